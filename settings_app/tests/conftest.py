"""Fixtures for the settings tests: fake AI servers on 127.0.0.1, a test CA, connection guards.

The servers and handlers themselves are in fake_servers.py, which tests import.
"""

import socket

import pytest
import trustme

from core import guarded_fetch
from settings_app import probe
from settings_app.tests.fake_servers import ollama_handler, openai_handler, serve


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


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    """A throw-away certificate authority (trustme), trusted only where `trust_ca` says so."""
    return trustme.CA()


@pytest.fixture
def trust_ca(monkeypatch):
    """Make the guarded fetch's TLS context trust a test CA (on top of the system store)."""

    def trust(ca: trustme.CA) -> None:
        original = guarded_fetch._tls_context

        def context():
            ctx = original()
            ca.configure_trust(ctx)
            return ctx

        monkeypatch.setattr(guarded_fetch, "_tls_context", context)

    return trust
