"""Exits 0 if the bytes on stdin are already in RFC 8785 canonical form, as
an independent implementation (Trail of Bits' `rfc8785`) writes it: a
verifier in another language reproduces what a bundle's signature covers."""

import json
import sys

import rfc8785

data = sys.stdin.buffer.read()
again = rfc8785.dumps(json.loads(data))
if again != data:
    sys.stderr.write(f"not canonical:\n{data!r}\n{again!r}\n")
    sys.exit(1)
