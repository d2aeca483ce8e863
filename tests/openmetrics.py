"""Parses an OpenMetrics exposition (stdin) with Prometheus's official
Python client, which rejects what the format forbids (a family twice, a
missing `# EOF`, a bad escape), and prints each sample as JSON lines:
{"name", "labels", "value", "type"}."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = sys.stdin.read()
for family in text_string_to_metric_families(text):
    for s in family.samples:
        print(json.dumps({"family": family.name, "type": family.type,
                          "name": s.name, "labels": s.labels, "value": s.value}))
