import pytest

from audit.models import AuditEvent
from settings_app.crypto import decrypt_secret
from settings_app.models import AiSettings
from settings_app.tests.factories import AiSettingsFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/settings/ai"
DOCS_EXAMPLE = {"ai_provider": "custom", "custom_ai_url": "http://192.168.1.50:11434", "custom_ai_model": "llama3"}


@pytest.fixture(autouse=True)
def _no_dns_when_saving(monkeypatch):
    """Saving never resolves a host name (see probe.validate_saved_url)."""
    import socket

    def no_dns(*args, **kwargs):
        raise AssertionError("DNS was used while saving AI settings")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)


class TestRead:
    @pytest.mark.parametrize("client_fixture", ["admin_client", "operator_client", "viewer_client"])
    def test_default_is_platform(self, request, client_fixture):
        response = request.getfixturevalue(client_fixture).get(URL)
        assert response.status_code == 200
        assert response.json() == {
            "ai_provider": "platform",
            "custom_ai_url": None,
            "custom_ai_model": None,
            "custom_ai_api_key_set": False,
        }

    def test_saved_settings_of_the_callers_tenant_only(self, viewer_client, tenant, other_tenant):
        AiSettingsFactory(tenant=other_tenant, custom_ai_url="http://10.1.1.1:11434", custom_ai_model="phi3")
        AiSettingsFactory(tenant=tenant)
        assert viewer_client.get(URL).json() == {**DOCS_EXAMPLE, "custom_ai_api_key_set": False}


class TestUpdate:
    def test_documented_example(self, admin_client, admin_user, tenant):
        response = admin_client.patch(URL, DOCS_EXAMPLE, format="json")
        assert response.status_code == 200
        assert response.json() == {**DOCS_EXAMPLE, "custom_ai_api_key_set": False}
        ai = AiSettings.objects.get(tenant=tenant)
        assert (ai.ai_provider, ai.custom_ai_url, ai.custom_ai_model) == (
            "custom",
            "http://192.168.1.50:11434",
            "llama3",
        )
        event = AuditEvent.objects.get(tenant=tenant, action="settings.ai.update")
        assert event.actor_id == admin_user.id
        assert event.changes == DOCS_EXAMPLE

    def test_partial_update_keeps_the_rest(self, admin_client, tenant):
        AiSettingsFactory(tenant=tenant)
        response = admin_client.patch(URL, {"custom_ai_model": "mistral:7b"}, format="json")
        assert response.status_code == 200
        assert response.json()["custom_ai_url"] == "http://192.168.1.50:11434"
        assert response.json()["custom_ai_model"] == "mistral:7b"

    def test_back_to_platform_keeps_the_custom_values(self, admin_client, tenant):
        AiSettingsFactory(tenant=tenant)
        response = admin_client.patch(URL, {"ai_provider": "platform"}, format="json")
        assert response.status_code == 200
        assert response.json()["ai_provider"] == "platform"
        assert response.json()["custom_ai_model"] == "llama3"

    @pytest.mark.parametrize(
        "url",
        [
            "https://ollama.example.com",
            "http://ollama.lan:11434/",
            "http://10.0.0.5:8000/v1",
            "http://[fd12:3456::10]:11434",
        ],
    )
    def test_urls_that_are_accepted(self, admin_client, url):
        response = admin_client.patch(URL, {**DOCS_EXAMPLE, "custom_ai_url": url}, format="json")
        assert response.status_code == 200
        assert response.json()["custom_ai_url"] == url

    def test_empty_patch_changes_nothing(self, admin_client, tenant):
        response = admin_client.patch(URL, {}, format="json")
        assert response.status_code == 200
        assert response.json()["ai_provider"] == "platform"
        assert not AuditEvent.objects.filter(action="settings.ai.update").exists()

    def test_another_tenant_is_not_touched(self, admin_client, other_tenant_admin_client):
        admin_client.patch(URL, DOCS_EXAMPLE, format="json")
        assert other_tenant_admin_client.get(URL).json()["ai_provider"] == "platform"


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "field", "message"),
        [
            ({"ai_provider": "custom", "custom_ai_model": "llama3"}, "custom_ai_url", "Provider custom needs the URL"),
            (
                {"ai_provider": "custom", "custom_ai_url": "http://192.168.1.50:11434"},
                "custom_ai_model",
                "Provider custom needs a model.",
            ),
            ({**DOCS_EXAMPLE, "custom_ai_model": ""}, "custom_ai_model", "Provider custom needs a model."),
            ({**DOCS_EXAMPLE, "custom_ai_url": None}, "custom_ai_url", "Provider custom needs the URL"),
            ({**DOCS_EXAMPLE, "custom_ai_url": "ftp://192.168.1.50/"}, "custom_ai_url", "Only http:// and https://"),
            ({**DOCS_EXAMPLE, "custom_ai_url": "192.168.1.50:11434"}, "custom_ai_url", "Only http:// and https://"),
            ({**DOCS_EXAMPLE, "custom_ai_url": "http://u:p@192.168.1.50"}, "custom_ai_url", "user name or password"),
            ({**DOCS_EXAMPLE, "custom_ai_url": "http://127.0.0.1:11434"}, "custom_ai_url", "a loopback address"),
            ({**DOCS_EXAMPLE, "custom_ai_url": "http://0x7f000001"}, "custom_ai_url", "a loopback address"),
            ({**DOCS_EXAMPLE, "custom_ai_url": "http://localhost:11434"}, "custom_ai_url", "a loopback address"),
            (
                {**DOCS_EXAMPLE, "custom_ai_url": "http://169.254.169.254/latest"},
                "custom_ai_url",
                "a cloud metadata address",
            ),
            ({"ai_provider": "openai"}, "ai_provider", '"openai" is not a valid choice.'),
            ({**DOCS_EXAMPLE, "custom_ai_url": 5}, "custom_ai_url", "Must be a string."),
            ({**DOCS_EXAMPLE, "custom_ai_api_key": ["x"]}, "custom_ai_api_key", "Must be a string."),
            ({**DOCS_EXAMPLE, "custom_ai_model": "a" * 201}, "custom_ai_model", "no more than 200 characters"),
            ({**DOCS_EXAMPLE, "custom_ai_model": "llama\n3"}, "custom_ai_model", "control characters"),
            ({**DOCS_EXAMPLE, "custom_ai_api_key_set": True}, "custom_ai_api_key_set", "Unknown field."),
            ({**DOCS_EXAMPLE, "api_key": "sk"}, "api_key", "Unknown field."),
        ],
    )
    def test_bad_state_is_400_and_nothing_is_saved(self, admin_client, tenant, body, field, message):
        response = admin_client.patch(URL, body, format="json")
        assert response.status_code == 400
        errors = response.json()
        assert list(errors) == [field]
        assert message in errors[field][0]
        assert not AiSettings.objects.filter(tenant=tenant).exists()

    def test_loopback_url_is_accepted_when_the_operator_allows_it(self, admin_client, settings):
        settings.AI_PROBE_ALLOW_LOOPBACK = True
        response = admin_client.patch(URL, {**DOCS_EXAMPLE, "custom_ai_url": "http://localhost:11434"}, format="json")
        assert response.status_code == 200

    def test_a_stale_refused_url_does_not_block_switching_to_platform(self, admin_client, tenant):
        AiSettingsFactory(tenant=tenant, custom_ai_url="http://127.0.0.1:11434")  # saved while loopback was allowed
        assert admin_client.patch(URL, {"custom_ai_model": "phi3"}, format="json").status_code == 400
        assert admin_client.patch(URL, {"ai_provider": "platform"}, format="json").status_code == 200


class TestApiKey:
    def test_write_only_and_encrypted(self, admin_client, tenant):
        response = admin_client.patch(URL, {**DOCS_EXAMPLE, "custom_ai_api_key": " sk-secret-123 "}, format="json")
        assert response.status_code == 200
        assert response.json() == {**DOCS_EXAMPLE, "custom_ai_api_key_set": True}
        assert "sk-secret-123" not in response.content.decode()
        stored = AiSettings.objects.get(tenant=tenant).custom_ai_api_key_encrypted
        assert "sk-secret-123" not in stored
        assert decrypt_secret(stored) == "sk-secret-123"
        assert admin_client.get(URL).json()["custom_ai_api_key_set"] is True

    def test_never_in_the_audit_log(self, admin_client, tenant):
        admin_client.patch(URL, {**DOCS_EXAMPLE, "custom_ai_api_key": "sk-secret-123"}, format="json")
        admin_client.patch(URL, {"custom_ai_api_key": None}, format="json")
        events = AuditEvent.objects.filter(tenant=tenant, action="settings.ai.update").order_by("occurred_at")
        assert [e.changes.get("custom_ai_credential") for e in events] == ["set", "cleared"]
        assert all("sk-secret" not in str(e.changes) for e in events)

    @pytest.mark.parametrize("cleared", [None, ""])
    def test_cleared_with_null_or_empty(self, admin_client, tenant, cleared):
        admin_client.patch(URL, {**DOCS_EXAMPLE, "custom_ai_api_key": "sk-1"}, format="json")
        response = admin_client.patch(URL, {"custom_ai_api_key": cleared}, format="json")
        assert response.status_code == 200
        assert response.json()["custom_ai_api_key_set"] is False
        assert AiSettings.objects.get(tenant=tenant).custom_ai_api_key_encrypted == ""

    def test_kept_when_only_the_model_changes(self, admin_client):
        admin_client.patch(URL, {**DOCS_EXAMPLE, "custom_ai_api_key": "sk-1"}, format="json")
        response = admin_client.patch(URL, {"custom_ai_model": "phi3"}, format="json")
        assert response.json()["custom_ai_api_key_set"] is True

    @pytest.mark.parametrize(
        "new_url", ["http://192.168.1.51:11434", "https://192.168.1.50:11434", "http://192.168.1.50:8080"]
    )
    def test_cleared_when_the_server_changes(self, admin_client, new_url):
        # Otherwise the next probe would hand the key to the new server.
        admin_client.patch(URL, {**DOCS_EXAMPLE, "custom_ai_api_key": "sk-1"}, format="json")
        response = admin_client.patch(URL, {"custom_ai_url": new_url}, format="json")
        assert response.json()["custom_ai_api_key_set"] is False

    def test_new_server_with_a_new_key(self, admin_client, tenant):
        admin_client.patch(URL, {**DOCS_EXAMPLE, "custom_ai_api_key": "sk-1"}, format="json")
        response = admin_client.patch(
            URL, {"custom_ai_url": "http://10.0.0.9:8000", "custom_ai_api_key": "sk-2"}, format="json"
        )
        assert response.json()["custom_ai_api_key_set"] is True
        assert decrypt_secret(AiSettings.objects.get(tenant=tenant).custom_ai_api_key_encrypted) == "sk-2"

    def test_undecryptable_after_secret_key_change(self, admin_client, tenant, settings):
        admin_client.patch(URL, {**DOCS_EXAMPLE, "custom_ai_api_key": "sk-1"}, format="json")
        stored = AiSettings.objects.get(tenant=tenant).custom_ai_api_key_encrypted
        old_key = settings.SECRET_KEY
        settings.SECRET_KEY = "another-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
        assert decrypt_secret(stored) is None
        settings.SECRET_KEY_FALLBACKS = [old_key]
        assert decrypt_secret(stored) == "sk-1"
