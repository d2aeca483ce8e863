"""A hostile MCP server over Streamable HTTP, for tests/all/mcp_servers.rs:
each misbehaviour is one path, `/MODE/mcp`, so that one process serves every
case. It speaks just enough of the protocol (initialize, tools/list,
tools/call, JSON or SSE responses) to be taken for a server, then breaks a
rule on purpose. Prints `listening PORT` once it is bound to loopback.

Modes:
    remote-ref        a tool whose input schema has a remote `$ref`
    control-name      a tool whose name holds control characters, beside `ok`
    output-violation  `ok`'s result violates its output schema
    oversized         `ok` answers with more bytes than any cap allows
    non-json          `ok` answers with text that is not JSON
    silent            `ok` never answers (until the client gives up)
    silent-init       `initialize` never answers
    list-changed      `ok` answers, over SSE, after saying the tools changed
    huge-list         `tools/list` never ends (a new cursor each page)
    echo-auth         `ok` answers with the `Authorization` header it was sent
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OK_TOOL = {
    "name": "ok",
    "description": "Answers.",
    "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}},
}

# How long a silent server holds a request: longer than any test's
# call-timeout, short enough that the process ends on its own.
SILENCE = 30


def tools_for(mode, cursor):
    if mode == "remote-ref":
        return {
            "tools": [
                OK_TOOL,
                {
                    "name": "fetch",
                    "inputSchema": {"$ref": "http://127.0.0.1:9/evil.json"},
                },
            ]
        }
    if mode == "control-name":
        return {"tools": [OK_TOOL, {"name": "evil\u001b[31m\u0007name", "inputSchema": {"type": "object"}}]}
    if mode == "output-violation":
        tool = dict(OK_TOOL)
        tool["outputSchema"] = {
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "required": ["n"],
        }
        return {"tools": [tool]}
    if mode == "huge-list":
        return {"tools": [OK_TOOL], "nextCursor": str(int(cursor or "0") + 1)}
    return {"tools": [OK_TOOL]}


def call_result(mode):
    if mode == "output-violation":
        return {
            "content": [{"type": "text", "text": "{\"n\": \"not a number\"}"}],
            "structuredContent": {"n": "not a number"},
        }
    if mode == "oversized":
        return {"content": [{"type": "text", "text": "x" * (3 << 20)}]}
    return {"content": [{"type": "text", "text": "fine"}]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Mcp-Session-Id", "hostile-1")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        # No server-initiated stream.
        self.send(405, b"", "text/plain", [("Allow", "POST, DELETE")])

    def do_DELETE(self):
        self.send(200, b"", "text/plain")

    def do_POST(self):
        mode = self.path.strip("/").split("/")[0]
        length = int(self.headers.get("Content-Length", "0"))
        message = json.loads(self.rfile.read(length))
        if "id" not in message:
            self.send(202, b"", "text/plain")
            return
        method = message.get("method")
        params = message.get("params") or {}

        def answer(result):
            body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result})
            self.send(200, body.encode())

        if method == "initialize":
            if mode == "silent-init":
                time.sleep(SILENCE)
                return
            answer(
                {
                    "protocolVersion": params.get("protocolVersion", "2025-11-25"),
                    "capabilities": {"tools": {"listChanged": True}},
                    "serverInfo": {"name": "hostile", "version": "1"},
                }
            )
        elif method == "tools/list":
            answer(tools_for(mode, params.get("cursor")))
        elif method == "tools/call":
            if mode == "silent":
                time.sleep(SILENCE)
                return
            if mode == "non-json":
                self.send(200, b"this is not JSON {", "application/json")
                return
            result = call_result(mode)
            if mode == "echo-auth":
                said = self.headers.get("Authorization", "")
                result = {"content": [{"type": "text", "text": f"you sent {said}"}]}
            if mode == "list-changed":
                events = [
                    {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"},
                    {"jsonrpc": "2.0", "id": message["id"], "result": result},
                ]
                body = "".join(f"event: message\ndata: {json.dumps(e)}\n\n" for e in events)
                self.send(200, body.encode(), "text/event-stream")
                return
            answer(result)
        else:
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": message["id"],
                    "error": {"code": -32601, "message": f"no method {method}"},
                }
            )
            self.send(200, body.encode())


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    # The test kills the process; it also ends by itself after a while, so
    # that no test leaves it behind.
    threading.Timer(600, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
