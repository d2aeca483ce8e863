"""Drives an MCP server with the official Python SDK (`mcp` on PyPI), for the
end-to-end tests in tests/all/mcp.rs: a client FemtoClaw did not write.

Reads one scenario as JSON on stdin:

    {"command": ["fc-host", "mcp", "--policy", "p.toml"], "env": {...}}
        or {"url": "http://127.0.0.1:PORT/mcp", "token": "..."}
    "mode": "legacy" (the 2025-11-25 initialize handshake) or "auto"
            (probe the newest revision with server/discover, as the SDK does),
    "steps": [{"list": true} | {"call": NAME, "arguments": {...}}]

and prints one JSON report on stdout: the negotiated protocol version, the
server's name, and each step's result as the SDK parsed it (so a result the
SDK cannot parse fails here, not in the test's reading of it).
"""

import asyncio
import json
import sys

import httpx2 as httpx
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def main(scenario):
    if "url" in scenario:
        headers = {}
        if scenario.get("token"):
            headers["Authorization"] = "Bearer " + scenario["token"]
        http = httpx.AsyncClient(headers=headers, timeout=30)
        server = streamable_http_client(scenario["url"], http_client=http)
    else:
        command = scenario["command"]
        server = StdioServerParameters(
            command=command[0], args=command[1:], env=scenario.get("env")
        )
    report = {"steps": []}
    async with Client(server, mode=scenario.get("mode", "auto"), read_timeout_seconds=60) as client:
        report["protocol_version"] = client.protocol_version
        info = client.server_info
        report["server"] = info.name if info else None
        for step in scenario["steps"]:
            if "list" in step:
                listed = await client.list_tools()
                report["steps"].append({"tools": [dump(t) for t in listed.tools]})
            else:
                result = await client.call_tool(step["call"], step.get("arguments", {}))
                report["steps"].append(dump(result))
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main(json.load(sys.stdin)))
