"""GET /settings/ai/models: the API around the probe (the probe itself: test_probe.py)."""

import socket

import pytest

from settings_app import probe, services
from settings_app.tests.conftest import ollama_handler, send_json, serve
from settings_app.tests.factories import AiSettingsFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/settings/ai/models"


class TestPlatform:
    def test_platform_models_by_default(self, admin_client, settings):
        settings.HALTLESS_PLATFORM_AI_MODELS = ["haltless-a", "haltless-b"]
        response = admin_client.get(URL)
        assert response.status_code == 200
        assert response.json() == {
            "provider_type": "platform",
            "models": [{"name": "haltless-a"}, {"name": "haltless-b"}],
        }

    def test_platform_provider_with_a_saved_custom_url_lists_platform_models(self, admin_client, tenant, monkeypatch):
        AiSettingsFactory(tenant=tenant, ai_provider="platform")
        monkeypatch.setattr(probe, "probe_models", lambda *a, **k: pytest.fail("must not probe"))
        assert admin_client.get(URL).json()["provider_type"] == "platform"


@pytest.mark.usefixtures("allow_loopback")
class TestProbeUrl:
    def test_ollama(self, admin_client, ollama_server):
        response = admin_client.get(URL, {"probe_url": ollama_server.url})
        assert response.status_code == 200
        assert response.json() == {
            "provider_type": "ollama",
            "models": [
                {"name": "llama3:latest", "size": 4661224676, "modified_at": "2024-05-01T10:00:00Z"},
                {"name": "mistral:7b", "size": 4109865159, "modified_at": "2024-04-01T10:00:00Z"},
            ],
        }

    def test_openai_compatible(self, admin_client, openai_server):
        response = admin_client.get(URL, {"probe_url": openai_server.url + "/v1"})
        assert response.status_code == 200
        assert response.json() == {
            "provider_type": "openai",
            "models": [
                {"name": "gpt-oss-20b", "owned_by": "vllm"},
                {"name": "qwen2.5-7b-instruct", "owned_by": "vllm"},
            ],
        }

    def test_saved_key_is_not_sent_to_another_url(self, admin_client, tenant, openai_server):
        services.ai_settings_update(
            tenant=tenant,
            changes={
                "ai_provider": "custom",
                "custom_ai_url": "http://192.168.1.50:8000",
                "custom_ai_model": "m",
                "custom_ai_api_key": "sk-tenant",
            },
        )
        assert admin_client.get(URL, {"probe_url": openai_server.url}).status_code == 200
        assert all("Authorization" not in r["headers"] for r in openai_server.requests)

    def test_unusable_answer_is_502(self, admin_client):
        with serve(lambda h: send_json(h, 200, {"status": "ok"})) as fake:
            response = admin_client.get(URL, {"probe_url": fake.url})
        assert response.status_code == 502
        assert "is not an Ollama or OpenAI-compatible server" in response.json()["detail"]
        assert list(response.json()) == ["detail"]

    def test_redirect_is_502(self, admin_client):
        def redirect(handler):
            handler.send_response(301)
            handler.send_header("Location", "http://127.0.0.1:1/")
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        with serve(redirect) as fake:
            response = admin_client.get(URL, {"probe_url": fake.url})
        assert response.status_code == 502
        assert "redirects are not followed" in response.json()["detail"]

    def test_slow_server_is_502(self, admin_client, short_deadline):
        import time

        with serve(lambda h: time.sleep(2)) as fake:
            response = admin_client.get(URL, {"probe_url": fake.url})
        assert response.status_code == 502
        assert response.json() == {"detail": f"The AI server at {fake.url} did not answer within 1 seconds."}


class TestSavedUrl:
    def test_probes_the_saved_url_with_the_saved_key(self, admin_client, tenant, openai_server, settings):
        settings.AI_PROBE_ALLOW_LOOPBACK = True
        services.ai_settings_update(
            tenant=tenant,
            changes={
                "ai_provider": "custom",
                "custom_ai_url": openai_server.url + "/v1",
                "custom_ai_model": "gpt-oss-20b",
                "custom_ai_api_key": "sk-tenant",
            },
        )
        response = admin_client.get(URL)
        assert response.status_code == 200
        assert response.json()["provider_type"] == "openai"
        assert openai_server.requests[0]["headers"]["Authorization"] == "Bearer sk-tenant"

    def test_same_rules_apply_to_the_saved_url(self, admin_client, tenant, connection_attempts):
        # Saved while loopback was allowed; the operator has since turned that off.
        AiSettingsFactory(tenant=tenant, custom_ai_url="http://127.0.0.1:11434")
        response = admin_client.get(URL)
        assert response.status_code == 400
        assert response.json() == {
            "custom_ai_url": [
                "Refused: 127.0.0.1 is a loopback address; the AI server must be reachable at a LAN or public address."
            ]
        }
        assert connection_attempts == []

    def test_other_tenants_url_is_not_used(self, admin_client, other_tenant, monkeypatch):
        AiSettingsFactory(tenant=other_tenant, custom_ai_url="http://192.168.1.77:11434")
        monkeypatch.setattr(probe, "probe_models", lambda *a, **k: pytest.fail("must not probe"))
        assert admin_client.get(URL).json()["provider_type"] == "platform"


class TestRefusals:
    @pytest.mark.parametrize(
        ("probe_url", "message"),
        [
            ("http://127.0.0.1:11434", "Refused: 127.0.0.1 is a loopback address"),
            ("http://localhost:11434", "Refused: localhost resolves to 127.0.0.1, a loopback address"),
            ("http://127.1:11434", "Refused: 127.1 resolves to 127.0.0.1, a loopback address"),
            ("http://2130706433:11434", "Refused: 2130706433 resolves to 127.0.0.1, a loopback address"),
            ("http://0x7f000001:11434", "Refused: 0x7f000001 resolves to 127.0.0.1, a loopback address"),
            ("http://[::1]:11434", "Refused: ::1 is a loopback address"),
            (
                "http://[::ffff:127.0.0.1]:11434",
                "Refused: ::ffff:127.0.0.1 is a loopback address (127.0.0.1, embedded in an IPv6 address)",
            ),
            ("http://169.254.169.254/latest/meta-data/", "Refused: 169.254.169.254 is a cloud metadata address"),
            ("http://[fd00:ec2::254]/", "Refused: fd00:ec2::254 is a cloud metadata address"),
            ("http://100.100.100.200/", "Refused: 100.100.100.200 is a cloud metadata address"),
            ("http://169.254.3.4/", "Refused: 169.254.3.4 is a link-local address"),
            ("http://224.0.0.1/", "Refused: 224.0.0.1 is a multicast address"),
            ("http://0.0.0.0:11434", "Refused: 0.0.0.0 is an unspecified address"),
            ("gopher://192.168.1.50/", "Only http:// and https:// URLs are allowed."),
            ("http://user:pw@192.168.1.50/", "The URL must not contain a user name or password."),
        ],
    )
    def test_refused_with_400_and_no_connection(self, admin_client, connection_attempts, probe_url, message):
        response = admin_client.get(URL, {"probe_url": probe_url})
        assert response.status_code == 400
        assert list(response.json()) == ["probe_url"]
        assert response.json()["probe_url"][0].startswith(message)
        assert connection_attempts == []

    def test_private_lan_is_probed(self, admin_client, monkeypatch):
        # Reaches the connector with the checked address; no packet is sent anywhere.
        dialled = []

        def connector(address, port, deadline):
            dialled.append((str(address), port))
            raise ConnectionRefusedError(111, "Connection refused")

        monkeypatch.setattr(probe, "_connect", connector)
        response = admin_client.get(URL, {"probe_url": "http://192.168.1.50:11434"})
        assert response.status_code == 502
        assert response.json() == {
            "detail": "Could not connect to the AI server at http://192.168.1.50:11434: Connection refused."
        }
        assert dialled == [("192.168.1.50", 11434)]


class TestThrottle:
    def test_probes_are_rate_limited_per_admin(self, admin_client):
        for _ in range(30):
            assert admin_client.get(URL).status_code == 200
        response = admin_client.get(URL)
        assert response.status_code == 429
        assert "detail" in response.json()


def test_fixture_servers_only_listen_on_loopback():
    with serve(ollama_handler) as fake:
        assert socket.gethostbyname(fake.url.split("//")[1].split(":")[0]) == "127.0.0.1"
