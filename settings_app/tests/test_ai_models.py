"""GET /settings/ai/models: the API around the probe (the probe itself: test_probe.py)."""

import socket

import pytest

from core.caller import Caller
from settings_app import probe, services
from settings_app.tests.factories import AiSettingsFactory
from settings_app.tests.fake_servers import ollama_handler, serve

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
            by=Caller.system(tenant_id=tenant.pk),
            changes={
                "ai_provider": "custom",
                "custom_ai_url": "http://192.168.1.50:8000",
                "custom_ai_model": "m",
                "custom_ai_api_key": "sk-tenant",
            },
        )
        assert admin_client.get(URL, {"probe_url": openai_server.url}).status_code == 200
        assert all("Authorization" not in r["headers"] for r in openai_server.requests)


class TestSavedUrl:
    def test_probes_the_saved_url_with_the_saved_key(self, admin_client, tenant, openai_server, settings):
        settings.AI_PROBE_ALLOW_LOOPBACK = True
        services.ai_settings_update(
            by=Caller.system(tenant_id=tenant.pk),
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
        assert response.json() == {"detail": "This address is not allowed for an AI server."}
        assert connection_attempts == []

    def test_a_malformed_saved_url_names_its_field(self, admin_client, tenant, connection_attempts):
        AiSettingsFactory(tenant=tenant, ai_provider="custom", custom_ai_url="http://user:pw@192.168.1.50/")
        response = admin_client.get(URL)
        assert (response.status_code, response.json()) == (
            400,
            {"custom_ai_url": ["The URL must not contain a user name or password."]},
        )
        assert connection_attempts == []

    def test_other_tenants_url_is_not_used(self, admin_client, other_tenant, monkeypatch):
        AiSettingsFactory(tenant=other_tenant, custom_ai_url="http://192.168.1.77:11434")
        monkeypatch.setattr(probe, "probe_models", lambda *a, **k: pytest.fail("must not probe"))
        assert admin_client.get(URL).json()["provider_type"] == "platform"


def test_fixture_servers_only_listen_on_loopback():
    with serve(ollama_handler) as fake:
        assert socket.gethostbyname(fake.url.split("//")[1].split(":")[0]) == "127.0.0.1"
