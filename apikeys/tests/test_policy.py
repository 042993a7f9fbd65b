"""The tenant key policy (contract Part 2, "Tenant key policy"; issue 16 item 6) and the notices."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.notices import api_key_notices_send
from apikeys.tests.factories import ApiKeyFactory
from audit.models import AuditEvent
from core.caller import Caller
from haltless.testing import client_for_key
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_endpoint_set

pytestmark = pytest.mark.django_db

POLICY = "/api/v1/settings/api-key-policy"
KEYS = "/api/v1/settings/api-keys"
DEFAULTS = {
    "max_lifetime_days": None,
    "require_expiry": False,
    "notify_days_before_expiry": [7, 1],
    "notify_unused_after_days": None,
    "webhook_url": None,
    "leaked_key_action": "revoke",
}
LIFETIME_MESSAGE = "The tenant's API key policy allows a key to live at most 30 days."
EXPIRY_REQUIRED = "The tenant's API key policy requires an expiry."


def in_days(days: float) -> str:
    return (timezone.now() + timedelta(days=days)).isoformat()


@pytest.fixture
def thirty_day_policy(admin_client):
    response = admin_client.put(POLICY, {"max_lifetime_days": 30}, format="json")
    assert response.status_code == 200
    return response.json()


class TestReadAndWrite:
    def test_defaults(self, viewer_client):
        assert viewer_client.get(POLICY).json() == DEFAULTS

    def test_put_replaces_and_audits(self, admin_client, admin_user):
        body = {
            "max_lifetime_days": 90,
            "require_expiry": True,
            "notify_days_before_expiry": [1, 14, 14],
            "notify_unused_after_days": 60,
            "leaked_key_action": "notify",
        }
        response = admin_client.put(POLICY, body, format="json")
        assert response.status_code == 200
        assert response.json() == {**DEFAULTS, **body, "notify_days_before_expiry": [14, 1]}
        assert admin_client.get(POLICY).json() == response.json()
        event = AuditEvent.objects.get(action="api_key_policy.update")
        assert event.actor_id == admin_user.id
        assert event.changes["max_lifetime_days"] == [None, 90]
        # Omitted fields go back to their defaults.
        assert admin_client.put(POLICY, {}, format="json").json() == DEFAULTS

    @pytest.mark.parametrize(
        "body",
        [
            {"max_lifetime_days": 0},
            {"max_lifetime_days": 731},
            {"require_expiry": "sometimes"},
            {"notify_days_before_expiry": [0]},
            {"notify_days_before_expiry": [91]},
            {"notify_days_before_expiry": 7},
            {"notify_unused_after_days": 366},
            {"leaked_key_action": "ignore"},
            {"webhook_url": "gopher://x.test/"},
            {"max_lifetime": 30},
        ],
    )
    def test_bad_input_is_400_and_changes_nothing(self, admin_client, body):
        response = admin_client.put(POLICY, body, format="json")
        assert response.status_code == 400, response.content
        assert admin_client.get(POLICY).json() == DEFAULTS
        assert not AuditEvent.objects.filter(action="api_key_policy.update").exists()

    def test_only_admins_write(self, operator_client):
        assert operator_client.put(POLICY, {"require_expiry": True}, format="json").status_code == 403


class TestExistingKeysAreNeverRewritten:
    def test_a_policy_change_writes_no_expiry_and_flags_violators(self, admin_client, tenant):
        forever = ApiKeyFactory(tenant=tenant, name="forever")
        long = ApiKeyFactory(tenant=tenant, name="long", expires_at=timezone.now() + timedelta(days=400))
        fine = ApiKeyFactory(tenant=tenant, name="fine", expires_at=timezone.now() + timedelta(days=10))
        before = {row["id"]: row for row in ApiKey.objects.values()}
        assert admin_client.put(POLICY, {"max_lifetime_days": 30}, format="json").status_code == 200
        assert {row["id"]: row for row in ApiKey.objects.values()} == before
        flagged = {item["name"]: item["policy_violations"] for item in admin_client.get(KEYS).json()}
        assert flagged == {"forever": ["no_expiry"], "long": ["lifetime_exceeds_policy"], "fine": []}
        # Flagged keys still work: the policy blocks new violations, it does not break agents.
        for key in (forever, long, fine):
            assert client_for_key(key.secret).get("/api/v1/agent/whoami").status_code == 200

    def test_require_expiry_alone_flags_keys_without_one(self, admin_client, tenant):
        ApiKeyFactory(tenant=tenant, name="forever")
        admin_client.put(POLICY, {"require_expiry": True}, format="json")
        assert admin_client.get(KEYS).json()[0]["policy_violations"] == ["no_expiry"]


class TestEnforcement:
    def test_create_without_expiry_or_beyond_the_lifetime_is_400(self, admin_client, thirty_day_policy):
        assert admin_client.post(KEYS, {"name": "k"}, format="json").json() == {"expires_at": [EXPIRY_REQUIRED]}
        response = admin_client.post(KEYS, {"name": "k", "expires_at": in_days(31)}, format="json")
        assert response.status_code == 400
        assert response.json() == {"expires_at": [LIFETIME_MESSAGE]}
        assert admin_client.post(KEYS, {"name": "k", "expires_at": in_days(29)}, format="json").status_code == 201

    def test_patching_expires_at_counts_from_creation(self, admin_client, thirty_day_policy, tenant):
        key = ApiKeyFactory(tenant=tenant, expires_at=timezone.now() + timedelta(days=5))
        ApiKey.objects.filter(pk=key.pk).update(created_at=timezone.now() - timedelta(days=20))
        url = f"{KEYS}/{key.id}"
        assert admin_client.patch(url, {"expires_at": in_days(15)}, format="json").json() == {
            "expires_at": [LIFETIME_MESSAGE]
        }
        assert admin_client.patch(url, {"expires_at": None}, format="json").json() == {"expires_at": [EXPIRY_REQUIRED]}
        assert admin_client.patch(url, {"expires_at": in_days(9)}, format="json").status_code == 200
        # Other fields of a violating key can still change.
        forever = ApiKeyFactory(tenant=tenant)
        assert admin_client.patch(f"{KEYS}/{forever.id}", {"name": "renamed"}, format="json").status_code == 200

    def test_rotating_counts_from_the_rotation(self, admin_client, thirty_day_policy, tenant):
        forever = ApiKeyFactory(tenant=tenant)
        rotate = f"{KEYS}/{forever.id}/rotate"
        assert admin_client.post(rotate, {}, format="json").json() == {"expires_at": [EXPIRY_REQUIRED]}
        assert admin_client.post(rotate, {"expires_at": in_days(31)}, format="json").status_code == 400
        assert admin_client.post(rotate, {"expires_at": in_days(30)}, format="json").status_code == 201

    def test_self_rotation_of_a_violating_key_is_400(self, admin_client, thirty_day_policy, tenant):
        forever = ApiKeyFactory(tenant=tenant)
        response = client_for_key(forever.secret).post("/api/v1/agent/key/rotate", {}, format="json")
        assert response.status_code == 400
        assert response.json() == {"expires_at": [EXPIRY_REQUIRED]}

    def test_issue_api_key_command(self, thirty_day_policy, tenant):
        with pytest.raises(CommandError, match="requires an expiry"):
            call_command("issue_api_key", "--tenant", str(tenant.id), "--name", "cli", stdout=StringIO())
        out = StringIO()
        expiry = (timezone.now() + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
        call_command("issue_api_key", "--tenant", str(tenant.id), "--name", "cli", "--expires-at", expiry, stdout=out)
        assert out.getvalue().startswith("hlts_")


class TestNotices:
    @pytest.fixture
    def with_webhook(self, tenant):
        webhook_endpoint_set(by=Caller.system(tenant_id=tenant.id), url="https://hooks.example.com/haltless")

    def events(self, type_: str) -> list[dict]:
        return [d.payload["data"] for d in WebhookDelivery.objects.filter(type=type_).order_by("created_at")]

    def test_each_key_and_threshold_once(self, tenant, with_webhook):
        key = ApiKeyFactory(tenant=tenant, expires_at=timezone.now() + timedelta(days=5))
        api_key_notices_send()
        api_key_notices_send()
        assert [e["days_before_expiry"] for e in self.events("api_key.expiring")] == [7]
        later = timezone.now() + timedelta(days=4, hours=12)
        api_key_notices_send(now=later)
        api_key_notices_send(now=later)
        assert [e["days_before_expiry"] for e in self.events("api_key.expiring")] == [7, 1]
        assert self.events("api_key.expiring")[0]["key_id"] == str(key.id)

    def test_a_new_expiry_rearms_the_notices(self, tenant, with_webhook):
        key = ApiKeyFactory(tenant=tenant, expires_at=timezone.now() + timedelta(days=5))
        api_key_notices_send()
        ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + timedelta(days=6))
        api_key_notices_send()
        assert len(self.events("api_key.expiring")) == 2

    def test_unused_once_and_again_after_a_use(self, admin_client, tenant, with_webhook):
        admin_client.put(
            "/api/v1/settings/api-key-policy",
            {"notify_unused_after_days": 30, "webhook_url": "https://hooks.example.com/haltless"},
            format="json",
        )
        key = ApiKeyFactory(tenant=tenant, name="idle", last_used_at=timezone.now() - timedelta(days=40))
        ApiKeyFactory(tenant=tenant, name="busy", last_used_at=timezone.now())
        api_key_notices_send()
        api_key_notices_send()
        assert [e["name"] for e in self.events("api_key.unused")] == ["idle"]
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
        api_key_notices_send(now=timezone.now() + timedelta(days=31))
        assert sorted(e["name"] for e in self.events("api_key.unused")) == ["busy", "idle", "idle"]

    def test_revoked_and_expired_keys_get_no_notice(self, tenant, with_webhook):
        ApiKeyFactory(tenant=tenant, expires_at=timezone.now() + timedelta(days=2), revoked_at=timezone.now())
        ApiKeyFactory(tenant=tenant, expires_at=timezone.now() - timedelta(days=1))
        assert api_key_notices_send().expiring == 0

    def test_nothing_without_a_webhook_url_and_nothing_marked(self, tenant):
        key = ApiKeyFactory(tenant=tenant, expires_at=timezone.now() + timedelta(days=2))
        assert api_key_notices_send().expiring == 0
        key.refresh_from_db()
        assert key.expiry_notices_sent == []

    def test_the_command_prints_counts(self, tenant, with_webhook):
        ApiKeyFactory(tenant=tenant, expires_at=timezone.now() + timedelta(days=2))
        out = StringIO()
        call_command("notify_api_keys", stdout=out)
        assert "sent 1 expiring and 0 unused notices" in out.getvalue()
        with pytest.raises(CommandError):
            call_command("notify_api_keys", "--tenant", "no such tenant", stdout=StringIO())

    def test_the_daily_beat_job_is_scheduled(self, settings):
        entry = settings.CELERY_BEAT_SCHEDULE["api-keys-notify-daily"]
        assert entry["task"] == "apikeys.notify"
        from apikeys.tasks import api_key_notices_send_task

        assert api_key_notices_send_task.name == "apikeys.notify"
