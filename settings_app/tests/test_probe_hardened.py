"""The AI probe, hardened (contract Part 2; issue 12, item 9).

Every failure answers one text naming the origin, every address-rule refusal
another, the reason goes to the server's log only, each probe is audited, and
probes are limited per tenant. All servers here listen on 127.0.0.1; refusals
are tested without connecting.
"""

import logging
import socket
import threading
import time
from contextlib import contextmanager

import pytest
import requests

from audit.models import AuditEvent
from core import guarded_fetch
from core.caller import Caller
from settings_app import probe, services
from settings_app.tests.factories import AiSettingsFactory
from settings_app.tests.fake_servers import send_json, serve
from settings_app.throttling import PROBES_PER_MINUTE
from users.tests.factories import UserFactory
from users.tokens import token_pair_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/settings/ai/models"
REFUSED = {"detail": "This address is not allowed for an AI server."}


def failed(origin: str) -> dict:
    return {"detail": f"No Ollama or OpenAI-compatible server answered at {origin}."}


@contextmanager
def raw_server(payload: bytes):
    """A TCP server on 127.0.0.1 that answers every connection with `payload` and closes."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()

    def run():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.recv(4096)
                    conn.sendall(payload)
                except OSError:
                    pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redirect(handler):
    handler.send_response(301)
    handler.send_header("Location", "http://127.0.0.1:1/")
    handler.send_header("Content-Length", "0")
    handler.end_headers()


@pytest.mark.usefixtures("allow_loopback")
class TestEveryFailureIsOneAnswer:
    """Unreachable, timed out, not HTTP, an HTTP error, not a model list, TLS, a lookup: all the same."""

    @pytest.mark.parametrize(
        ("handler", "reason"),
        [
            (lambda h: send_json(h, 200, {"status": "ok"}), "not an Ollama or OpenAI-compatible server"),
            (lambda h: send_json(h, 404, {"error": "nope"}), "HTTP 404"),
            (lambda h: send_json(h, 500, {"error": "boom"}), "HTTP 500"),
            (redirect, "redirects are not followed"),
        ],
        ids=["not-a-model-list", "http-404", "http-500", "redirect"],
    )
    def test_http_answers_that_are_not_a_model_list(self, admin_client, caplog, handler, reason):
        with serve(handler) as fake, caplog.at_level(logging.WARNING, logger="settings_app.services"):
            response = admin_client.get(URL, {"probe_url": fake.url})
        assert response.status_code == 502
        assert response.json() == failed(fake.url)
        assert reason in caplog.text

    def test_connection_refused(self, admin_client, caplog):
        origin = f"http://127.0.0.1:{closed_port()}"
        with caplog.at_level(logging.WARNING, logger="settings_app.services"):
            response = admin_client.get(URL, {"probe_url": origin})
        assert (response.status_code, response.json()) == (502, failed(origin))
        assert "Could not connect" in caplog.text

    def test_timed_out(self, admin_client, short_deadline, caplog):
        with serve(lambda h: time.sleep(2)) as fake, caplog.at_level(logging.WARNING, logger="settings_app.services"):
            response = admin_client.get(URL, {"probe_url": fake.url})
        assert (response.status_code, response.json()) == (502, failed(fake.url))
        assert "did not answer within 1 seconds" in caplog.text

    def test_not_http(self, admin_client, caplog):
        with raw_server(b"SSH-2.0-OpenSSH_9.6\r\n") as origin, caplog.at_level(logging.WARNING):
            response = admin_client.get(URL, {"probe_url": origin})
        assert (response.status_code, response.json()) == (502, failed(origin))
        assert "did not give a valid HTTP answer" in caplog.text

    def test_tls_to_a_plain_http_server(self, admin_client, caplog):
        with serve(lambda h: send_json(h, 200, {})) as fake, caplog.at_level(logging.WARNING):
            origin = fake.url.replace("http://", "https://")
            response = admin_client.get(URL, {"probe_url": origin})
        assert (response.status_code, response.json()) == (502, failed(origin))
        assert "TLS" in caplog.text

    def test_a_name_that_does_not_resolve(self, admin_client, monkeypatch, caplog):
        def no_such_name(*args, **kwargs):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
        with caplog.at_level(logging.WARNING):
            response = admin_client.get(URL, {"probe_url": "https://models.plant.example:8443/v1"})
        assert (response.status_code, response.json()) == (502, failed("https://models.plant.example:8443"))
        assert "Could not resolve" in caplog.text

    def test_an_unexpected_error_is_a_failure_too(self, admin_client, monkeypatch, ollama_server):
        monkeypatch.setitem(probe._PARSERS, "ollama", lambda body: 1 / 0)
        response = admin_client.get(URL, {"probe_url": ollama_server.url})
        assert (response.status_code, response.json()) == (502, failed(ollama_server.url))

    def test_the_default_port_is_left_out_of_the_origin(self, admin_client, monkeypatch):
        def refused(*args):
            raise ConnectionRefusedError(111, "x")

        monkeypatch.setattr(guarded_fetch, "_connect", refused)
        response = admin_client.get(URL, {"probe_url": "http://192.168.1.50/ollama"})
        assert response.json() == failed("http://192.168.1.50")


class TestEveryRefusalIsOneAnswer:
    @pytest.mark.parametrize(
        "probe_url",
        [
            "http://127.0.0.1:11434",
            "http://localhost:11434",
            "http://127.1:11434",
            "http://2130706433:11434",
            "http://0x7f000001:11434",
            "http://[::1]:11434",
            "http://[::ffff:127.0.0.1]:11434",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://169.254.3.4/",
            "http://224.0.0.1/",
            "http://0.0.0.0:11434",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b:1:a9fe:a9:fe00::]/",  # 169.254.169.254 in the /48 layout
        ],
    )
    def test_refused_with_one_text_and_no_connection(self, admin_client, connection_attempts, probe_url):
        response = admin_client.get(URL, {"probe_url": probe_url})
        assert (response.status_code, response.json()) == (400, REFUSED)
        assert connection_attempts == []

    def test_a_name_resolving_to_a_refused_address(self, admin_client, connection_attempts, monkeypatch, caplog):
        monkeypatch.setattr(
            socket,
            "getaddrinfo",
            lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))],
        )
        with caplog.at_level(logging.WARNING):
            response = admin_client.get(URL, {"probe_url": "http://ai.plant.example/"})
        assert (response.status_code, response.json()) == (400, REFUSED)
        assert "resolves to 169.254.169.254, a cloud metadata address" in caplog.text
        assert connection_attempts == []

    @pytest.mark.parametrize(
        ("probe_url", "message"),
        [
            ("gopher://192.168.1.50/", "Only http:// and https:// URLs are allowed."),
            ("http://user:pw@192.168.1.50/", "The URL must not contain a user name or password."),
        ],
    )
    def test_a_malformed_url_names_the_field(self, admin_client, connection_attempts, probe_url, message):
        response = admin_client.get(URL, {"probe_url": probe_url})
        assert (response.status_code, response.json()) == (400, {"probe_url": [message]})
        assert connection_attempts == []


class TestAudit:
    def events(self):
        return list(AuditEvent.objects.filter(action="settings.ai.probe").values("changes", "actor_id", "client_ip"))

    @pytest.mark.usefixtures("allow_loopback")
    def test_a_successful_probe(self, admin_client, admin_user, ollama_server):
        assert admin_client.get(URL, {"probe_url": ollama_server.url}).status_code == 200
        assert self.events() == [
            {
                "changes": {
                    "outcome": "succeeded",
                    "origin": ollama_server.url,
                    "provider_type": "ollama",
                    "models": 2,
                },
                "actor_id": admin_user.pk,
                "client_ip": "127.0.0.1",
            }
        ]

    @pytest.mark.usefixtures("allow_loopback")
    def test_a_failed_probe_without_its_reason(self, admin_client):
        origin = f"http://127.0.0.1:{closed_port()}"
        admin_client.get(URL, {"probe_url": origin})
        (event,) = self.events()
        assert event["changes"] == {"outcome": "failed", "origin": origin}

    def test_a_refused_probe(self, admin_client, connection_attempts):
        admin_client.get(URL, {"probe_url": "http://169.254.169.254/"})
        (event,) = self.events()
        assert event["changes"] == {"outcome": "refused", "origin": "http://169.254.169.254"}

    def test_listing_the_platforms_models_probes_nothing(self, admin_client):
        assert admin_client.get(URL).json()["provider_type"] == "platform"
        assert self.events() == []


class TestThrottlePerTenant:
    def test_the_tenants_admins_share_thirty_a_minute(self, admin_client, tenant):
        second_admin = UserFactory(tenant=tenant, role="admin")
        from haltless.testing import client_for_user

        second = client_for_user(second_admin)
        for i in range(PROBES_PER_MINUTE):
            assert (admin_client if i % 2 else second).get(URL).status_code == 200
        for client in (admin_client, second):
            response = client.get(URL)
            assert response.status_code == 429
            assert int(response["Retry-After"]) <= 60
            assert response.json()["detail"].startswith("Request was throttled.")

    def test_another_tenant_is_not_limited(self, admin_client, other_tenant_admin_client):
        for _ in range(PROBES_PER_MINUTE + 1):
            admin_client.get(URL)
        assert other_tenant_admin_client.get(URL).status_code == 200


@pytest.mark.django_db(transaction=True)
class TestThrottleOverHttp:
    def test_parallel_probes_never_pass_the_limit(self, live_server, admin_user):
        """40 probes at once from 8 threads against a live server: exactly 30 answered."""
        access = token_pair_for(admin_user)["access"]
        barrier = threading.Barrier(8)
        statuses: list[int] = []
        lock = threading.Lock()

        def probe_five():
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {access}"
            barrier.wait()
            for _ in range(5):
                status = session.get(live_server.url + URL, timeout=30).status_code
                with lock:
                    statuses.append(status)

        threads = [threading.Thread(target=probe_five) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200] * PROBES_PER_MINUTE + [429] * 10


class TestSavedKeyIsBoundToTheExactUrl:
    """Item 8: the key goes to the exact saved URL only; any change of the URL clears it."""

    SAVED = "http://192.168.1.50:8000/v1"

    @pytest.fixture
    def saved(self, tenant):
        return services.ai_settings_update(
            by=Caller.system(tenant_id=tenant.pk),
            changes={
                "ai_provider": "custom",
                "custom_ai_url": self.SAVED,
                "custom_ai_model": "m",
                "custom_ai_api_key": "sk-tenant",
            },
        )

    @pytest.mark.parametrize(
        "new_url",
        [
            "http://192.168.1.50:8000/echo/v1",  # only the path
            "http://192.168.1.50:8000/v1/",  # only a trailing slash
            "http://192.168.1.50:8000/V1",  # only the case of the path
            "https://192.168.1.50:8000/v1",
            "http://192.168.1.51:8000/v1",
            "http://192.168.1.50:8001/v1",
        ],
    )
    def test_any_change_of_the_url_clears_the_key(self, admin_client, saved, new_url):
        response = admin_client.patch("/api/v1/settings/ai", {"custom_ai_url": new_url}, format="json")
        assert response.status_code == 200
        assert response.json()["custom_ai_api_key_set"] is False
        event = AuditEvent.objects.filter(action="settings.ai.update").latest("occurred_at")
        assert event.changes["custom_ai_credential"] == "cleared"

    def test_the_same_url_keeps_the_key(self, admin_client, saved):
        response = admin_client.patch("/api/v1/settings/ai", {"custom_ai_url": f"  {self.SAVED} "}, format="json")
        assert response.json()["custom_ai_api_key_set"] is True

    def test_a_new_url_with_a_new_key_keeps_the_new_key(self, admin_client, saved):
        response = admin_client.patch(
            "/api/v1/settings/ai",
            {"custom_ai_url": "http://192.168.1.50:8000/other/v1", "custom_ai_api_key": "sk-new"},
            format="json",
        )
        assert response.json()["custom_ai_api_key_set"] is True

    @pytest.mark.usefixtures("allow_loopback")
    def test_a_path_moved_on_the_same_origin_never_receives_the_key(self, admin_client, tenant, openai_server):
        services.ai_settings_update(
            by=Caller.system(tenant_id=tenant.pk),
            changes={
                "ai_provider": "custom",
                "custom_ai_url": openai_server.url + "/v1",
                "custom_ai_model": "m",
                "custom_ai_api_key": "sk-tenant",
            },
        )
        admin_client.patch("/api/v1/settings/ai", {"custom_ai_url": openai_server.url + "/echo/v1"}, format="json")
        assert admin_client.get(URL).status_code == 200
        assert [r["path"] for r in openai_server.requests] == ["/echo/v1/models"]
        assert all("Authorization" not in r["headers"] for r in openai_server.requests)


def test_factory_saved_settings_probe_nothing_for_another_tenant(admin_client, other_tenant, monkeypatch):
    AiSettingsFactory(tenant=other_tenant, custom_ai_url="http://192.168.1.77:11434")
    monkeypatch.setattr(probe, "probe_models", lambda *a, **k: pytest.fail("must not probe"))
    assert admin_client.get(URL).json()["provider_type"] == "platform"
