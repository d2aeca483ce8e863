"""`text`: word counts and regex extraction, a FemtoClaw capability in Python.

Files are read with plain `open`: every path resolves against the directories
the policy mounted for this component, so the sandbox, not this code, decides
what is reachable. The runtime validated each call's arguments against the
input schema below before `invoke` runs.
"""

import errno
import json
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log
from wit_world.imports.types import (
    EffectClass,
    ToolError_Denied,
    ToolError_Failed,
    ToolError_InvalidArguments,
    ToolError_UnknownTool,
    ToolSpec,
)

# The text to work on: given inline, or read from a granted file.
SOURCE = {
    "text": {"type": "string"},
    "path": {"type": "string", "minLength": 1, "maxLength": 4096},
}
ONE_SOURCE = [{"required": ["text"]}, {"required": ["path"]}]

TOOLS = [
    ToolSpec(
        name="word_count",
        description="Count the words, lines and characters of a text or of a UTF-8 file.",
        input_schema=json.dumps(
            {
                "type": "object",
                "properties": SOURCE,
                "oneOf": ONE_SOURCE,
                "additionalProperties": False,
            }
        ),
        output_schema=json.dumps(
            {
                "type": "object",
                "properties": {
                    "words": {"type": "integer", "minimum": 0},
                    "lines": {"type": "integer", "minimum": 0},
                    "chars": {"type": "integer", "minimum": 0},
                },
                "required": ["words", "lines", "chars"],
                "additionalProperties": False,
            }
        ),
        effect=EffectClass.READ,
    ),
    ToolSpec(
        name="extract",
        description="Every match of a Python regular expression in a text or a UTF-8 file "
        "(the first group if the pattern has one), in order.",
        input_schema=json.dumps(
            {
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "minLength": 1, "maxLength": 1024},
                    "max_matches": {"type": "integer", "minimum": 1, "maximum": 10000},
                    **SOURCE,
                },
                "required": ["pattern"],
                "oneOf": ONE_SOURCE,
                "additionalProperties": False,
            }
        ),
        output_schema=json.dumps(
            {
                "type": "object",
                "properties": {
                    "matches": {"type": "array", "items": {"type": "string"}},
                    "truncated": {"type": "boolean"},
                },
                "required": ["matches", "truncated"],
                "additionalProperties": False,
            }
        ),
        effect=EffectClass.READ,
    ),
]

# What the sandbox answers for a path outside every mount.
DENIED_ERRNOS = {errno.EACCES, errno.EPERM, getattr(errno, "ENOTCAPABLE", 76)}


def read_source(args):
    if "text" in args:
        return args["text"]
    path = args["path"]
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        raise Err(ToolError_Failed(f"`{path}` is not UTF-8 text"))
    except OSError as e:
        reason = f"`{path}`: {e.strerror or e}"
        raise Err(ToolError_Denied(reason) if e.errno in DENIED_ERRNOS else ToolError_Failed(reason))


def word_count(args):
    text = read_source(args)
    return {"words": len(text.split()), "lines": len(text.splitlines()), "chars": len(text)}


def extract(args):
    try:
        pattern = re.compile(args["pattern"])
    except re.error as e:
        raise Err(ToolError_InvalidArguments(f"`pattern` is not a regular expression: {e}"))
    limit = args.get("max_matches", 100)
    matches = []
    for m in pattern.finditer(read_source(args)):
        if len(matches) == limit:
            return {"matches": matches, "truncated": True}
        matches.append(m.group(1) if pattern.groups else m.group(0))
    return {"matches": matches, "truncated": False}


HANDLERS = {"word_count": word_count, "extract": extract}


class ToolProvider(exports.ToolProvider):
    def describe(self):
        return TOOLS

    def invoke(self, call):
        log.log(log.Level.INFO, f"invoke {call.tool}")
        handler = HANDLERS.get(call.tool)
        if handler is None:
            raise Err(ToolError_UnknownTool(call.tool))
        return json.dumps(handler(json.loads(call.arguments)), ensure_ascii=False)
