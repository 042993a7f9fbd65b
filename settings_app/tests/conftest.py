"""Fixtures for the settings tests: fake AI servers on 127.0.0.1, TLS material, connection guards."""

import datetime
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from settings_app import probe


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
    """A threaded HTTP(S) server on `host`, port 0, answering every GET with `handle`."""
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
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


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


@pytest.fixture
def allow_loopback(settings):
    settings.AI_PROBE_ALLOW_LOOPBACK = True


@pytest.fixture
def short_deadline(monkeypatch):
    """A one-second probe deadline, so deadline tests stay quick."""
    monkeypatch.setattr(probe, "PROBE_DEADLINE_SECONDS", 1.0)
    return 1.0


@pytest.fixture
def ollama_server():
    with serve(ollama_handler) as fake:
        yield fake


@pytest.fixture
def openai_server():
    with serve(openai_handler) as fake:
        yield fake


@pytest.fixture
def connection_attempts(monkeypatch) -> list:
    """Records every outbound connect and fails it: for tests that must never connect."""
    attempts: list = []

    def refuse(sock_or_address, *args, **kwargs):
        attempts.append((sock_or_address, args))
        raise AssertionError("an outbound connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", lambda self, address: refuse(address))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: refuse(address))
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@dataclass
class TlsFiles:
    ca_path: str
    cert_path: str
    key_path: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def make_tls_files(directory, *, dns_names: list[str]) -> TlsFiles:
    """A throw-away CA and a server certificate for `dns_names`, signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Haltless test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(str(directory / "ca.pem"), str(directory / "cert.pem"), str(directory / "key.pem"))
    with open(files.ca_path, "wb") as f:
        f.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(files.cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(files.key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return files


@pytest.fixture
def trust_ca(monkeypatch):
    """Make the probe's TLS context trust a test CA (on top of the system store)."""

    def trust(ca_path: str) -> None:
        original = probe._tls_context

        def context():
            ctx = original()
            ctx.load_verify_locations(ca_path)
            return ctx

        monkeypatch.setattr(probe, "_tls_context", context)

    return trust


def wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
