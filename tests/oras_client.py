"""ORAS (oras-py), an OCI artifact client FemtoClaw did not write, for
tests/all/oci.rs. One JSON request on stdin:

- {"op": "pull", "target": "HOST:PORT/REPO@sha256:...", "outdir": DIR}
  pulls an artifact (checking its manifest against ORAS's schema) and
  prints the files it wrote, one per line;
- {"op": "push", "target": "HOST:PORT/REPO:TAG", "file": PATH} pushes a
  file as a plain ORAS artifact (not a FemtoClaw bundle);
- {"op": "htpasswd", "user": U, "password": P} prints an htpasswd line
  (bcrypt) for the registry's basic authentication.
"""

import json
import os
import sys

request = json.load(sys.stdin)
if request["op"] == "htpasswd":
    import bcrypt

    hashed = bcrypt.hashpw(request["password"].encode(), bcrypt.gensalt(rounds=4))
    print(f'{request["user"]}:{hashed.decode()}')
    sys.exit(0)

import oras.client

client = oras.client.OrasClient(hostname=request["target"].split("/")[0], insecure=True)
if request["op"] == "pull":
    for path in client.pull(target=request["target"], outdir=request["outdir"]):
        print(path)
elif request["op"] == "push":
    os.chdir(os.path.dirname(request["file"]))
    response = client.push(target=request["target"], files=[os.path.basename(request["file"])])
    response.raise_for_status()
else:
    sys.exit(f"unknown op {request['op']}")
