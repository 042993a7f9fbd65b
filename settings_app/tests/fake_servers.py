"""Fake AI servers for the probe's tests: threaded HTTP(S) servers on 127.0.0.1 (or ::1), port 0.

Imported by the tests (and by conftest.py for its fixtures); TLS material comes
from trustme (`tls_server_context`).
"""

import json
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import trustme

from haltless.testing import serving


@dataclass
class FakeServer:
    url: str
    port: int
    requests: list[dict] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


def send_json(handler: BaseHTTPRequestHandler, status: int, payload, headers: dict | None = None) -> None:
    body = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


@contextmanager
def serve(
    handle: Callable[[BaseHTTPRequestHandler], None],
    *,
    host: str = "127.0.0.1",
    tls: ssl.SSLContext | None = None,
) -> Iterator[FakeServer]:
    """A threaded HTTP(S) server on `host` (a loopback address), port 0, answering every GET with `handle`."""
    assert host in ("127.0.0.1", "::1"), "fake servers listen on loopback only"
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            requests.append({"path": self.path, "headers": dict(self.headers)})
            handle(self)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = Server((host, 0), Handler)
    port = server.server_address[1]
    fake = FakeServer(url="", port=port, requests=requests)
    scheme = "http"
    if tls is not None:
        tls.sni_callback = lambda sock, name, ctx: fake.server_names.append(name)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    fake.url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"
    with serving(server):
        yield fake


def tls_server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """A server-side TLS context with a certificate for `names`, signed by the test CA `ca`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*names).configure_cert(context)
    return context


OLLAMA_TAGS = {
    "models": [
        {"name": "llama3:latest", "model": "llama3:latest", "size": 4661224676, "modified_at": "2024-05-01T10:00:00Z"},
        {"name": "mistral:7b", "model": "mistral:7b", "size": 4109865159, "modified_at": "2024-04-01T10:00:00Z"},
    ]
}
OPENAI_MODELS = {
    "object": "list",
    "data": [
        {"id": "gpt-oss-20b", "object": "model", "created": 1, "owned_by": "vllm"},
        {"id": "qwen2.5-7b-instruct", "object": "model", "created": 2, "owned_by": "vllm"},
    ],
}


def ollama_handler(handler):
    if handler.path == "/api/tags":
        send_json(handler, 200, OLLAMA_TAGS)
    else:
        send_json(handler, 404, {"error": "not found"})


def openai_handler(handler):
    if handler.path.endswith("/v1/models"):
        send_json(handler, 200, OPENAI_MODELS)
    else:
        send_json(handler, 404, {"error": {"message": "not found"}})
