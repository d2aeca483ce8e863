"""Reads YAML documents on stdin and prints them as one JSON array (PyYAML,
installed with kubernetes-validate): the tests read deploy/'s manifests."""

import json
import sys

import yaml

json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)
