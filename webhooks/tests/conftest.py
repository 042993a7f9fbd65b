"""Fake webhook endpoints on 127.0.0.1 (port 0), and a guard that fails any outbound connect."""

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from haltless.testing import serving


@dataclass
class Endpoint:
    url: str
    received: list[dict] = field(default_factory=list)  # requests that reached the handler
    connections: list[float] = field(default_factory=list)


@contextmanager
def endpoint(answer: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[Endpoint]:
    """An HTTP server on 127.0.0.1 that records each POST and answers it with `answer`."""
    fake = Endpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            fake.connections.append(time.monotonic())
            super().setup()

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fake.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            answer(self)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/haltless"
    with serving(server):
        yield fake


def status_answer(status: int, headers: dict | None = None):
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def hanging_answer(seconds: float):
    def answer(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)

    return answer


@pytest.fixture
def allow_loopback(settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = True


@pytest.fixture
def ok_endpoint():
    with endpoint(status_answer(204)) as fake:
        yield fake


@pytest.fixture
def failing_endpoint():
    with endpoint(status_answer(500)) as fake:
        yield fake


@pytest.fixture
def redirecting_endpoint():
    with endpoint(status_answer(302, {"Location": "http://127.0.0.1:9/elsewhere"})) as fake:
        yield fake


@pytest.fixture
def hanging_endpoint():
    with endpoint(hanging_answer(5.0)) as fake:
        yield fake


@pytest.fixture
def short_attempts(monkeypatch):
    """A two-second attempt deadline instead of five, so hanging endpoints keep tests quick."""
    from webhooks import sender

    monkeypatch.setattr(sender, "ATTEMPT_DEADLINE_SECONDS", 2.0)


@pytest.fixture
def no_connect(monkeypatch) -> list:
    """Fails (and records) every outbound connect: for refusals that must never connect."""
    attempts: list = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError("an outbound connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", lambda self, address: refuse(address))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: refuse(address))
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.fixture
def resolves_to(monkeypatch):
    """resolves_to("hooks.example.test", "10.1.2.3"): fake DNS, so no real lookup happens."""

    def install(name: str, address: str):
        real = socket.getaddrinfo

        def fake(host, port, *args, **kwargs):
            if host == name:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                return [(family, socket.SOCK_STREAM, 6, "", (address, port))]
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", fake)

    return install
