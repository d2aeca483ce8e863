"""Checks provider requests and responses against the providers' own types.

The official `openai` and `anthropic` SDKs carry the request parameters and
responses of Chat Completions and Messages as types generated from each
provider's API definition. Each document on stdin (a JSON array of
`{"api": "openai"|"anthropic", "kind": "request"|"response", "body": …}`)
is validated against its type with pydantic; a key the type does not
define is reported too (TypedDicts would drop it silently), and so are the
rules of the Messages API that its types cannot state (no empty text
block, user and assistant turns alternating, starting with the user).
Prints a JSON array: for each document, `{"ok": bool, "errors": [...]}`.
"""

import json
import sys

from pydantic import TypeAdapter, ValidationError
from anthropic.types import Message
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from openai.types.chat import ChatCompletion
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming

TYPES = {
    ("openai", "request"): TypeAdapter(CompletionCreateParamsNonStreaming),
    ("openai", "response"): TypeAdapter(ChatCompletion),
    ("anthropic", "request"): TypeAdapter(MessageCreateParamsNonStreaming),
    ("anthropic", "response"): TypeAdapter(Message),
}


def materialise(value):
    """Validated TypedDicts hold lazy iterables for `Iterable[...]` fields:
    iterating them runs their validation."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_unset=True, by_alias=True)
    if isinstance(value, dict):
        return {k: materialise(v) for k, v in value.items()}
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    return [materialise(v) for v in value]


def unknown_keys(sent, kept, path="$"):
    """Keys of `sent` that validation did not keep: not in the type."""
    found = []
    if isinstance(sent, dict) and isinstance(kept, dict):
        for key, value in sent.items():
            if key not in kept:
                found.append(f"{path}.{key}: not a field of the API type")
            else:
                found += unknown_keys(value, kept[key], f"{path}.{key}")
    elif isinstance(sent, list) and isinstance(kept, list):
        for i, (a, b) in enumerate(zip(sent, kept)):
            found += unknown_keys(a, b, f"{path}[{i}]")
    return found


def messages_rules(body):
    errors = []
    roles = [m.get("role") for m in body.get("messages", [])]
    if not roles or roles[0] != "user":
        errors.append("$.messages: the first message must be the user's")
    for i in range(1, len(roles)):
        if roles[i] == roles[i - 1]:
            errors.append(f"$.messages[{i}]: two `{roles[i]}` messages in a row")
    for i, m in enumerate(body.get("messages", [])):
        content = m.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for j, block in enumerate(blocks):
            if block.get("type") == "text" and not block.get("text"):
                errors.append(f"$.messages[{i}].content[{j}]: an empty text block")
    return errors


def check(doc):
    adapter = TYPES[(doc["api"], doc["kind"])]
    body = doc["body"]
    try:
        kept = materialise(adapter.validate_python(body))
    except ValidationError as e:
        return [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
    errors = unknown_keys(body, kept)
    if doc["api"] == "anthropic" and doc["kind"] == "request":
        errors += messages_rules(body)
    return errors


def main():
    report = []
    for doc in json.load(sys.stdin):
        errors = check(doc)
        report.append({"ok": not errors, "errors": errors})
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
