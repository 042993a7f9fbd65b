"""Every message API keys, enrollment and webhooks show a person, as literal text (issue 13, item 10).

Other modules check these answers through the code's own constants too; here a changed text
fails a test. Each goes through the front door where one shows it (API, admin, command).
"""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys import services
from apikeys.models import ApiKey, ObservedIp
from apikeys.tests.factories import ApiKeyFactory
from core.caller import Caller
from webhooks import services as webhooks
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/settings/api-keys"
TOKENS = "/api/v1/settings/enrollment-tokens"
ADMIN_KEYS = "/admin/apikeys/apikey/"


def create(admin_client, **body):
    return admin_client.post(KEYS, {"name": "k", **body}, format="json")


class TestTheApi:
    def test_a_rate_limit_that_is_not_an_object(self, admin_client):
        answer = create(admin_client, rate_limit=5)
        assert (answer.status_code, answer.json()) == (
            400,
            {"rate_limit": ['Expected {"requests_per_minute": n|null, "readings_per_minute": n|null}.']},
        )

    def test_networks_that_are_not_networks(self, admin_client):
        answer = create(admin_client, allowed_cidrs=["nope", "10.0.0.1/8"])
        assert answer.status_code == 400
        assert answer.json() == {
            "allowed_cidrs": [
                "'nope' is not an IPv4 or IPv6 address or network.",
                "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?",
            ]
        }

    def test_an_expired_key_is_not_rotated(self, admin_client, expired_key):
        answer = admin_client.post(f"{KEYS}/{expired_key.pk}/rotate", {}, format="json")
        assert (answer.status_code, answer.json()) == (409, {"detail": "An expired key cannot be rotated."})

    def test_a_revoked_key_is_not_found(self, admin_client, api_key):
        assert admin_client.delete(f"{KEYS}/{api_key.api_key.pk}").status_code == 204
        for answer in (
            admin_client.delete(f"{KEYS}/{api_key.api_key.pk}"),
            admin_client.post(f"{KEYS}/{api_key.api_key.pk}/rotate", {}, format="json"),
        ):
            assert (answer.status_code, answer.json()) == (404, {"detail": "Not found."})

    def test_a_bulk_revoke_without_a_criterion(self, admin_client):
        answer = admin_client.post(f"{KEYS}/revoke", {"dry_run": True}, format="json")
        assert (answer.status_code, answer.json()) == (
            400,
            {"non_field_errors": ["Give at least one of ids, created_before, unused_since."]},
        )

    def test_a_webhook_url_that_is_not_http(self, admin_client):
        answer = admin_client.put("/api/v1/settings/api-key-policy", {"webhook_url": "ftp://x.example"}, format="json")
        assert (answer.status_code, answer.json()) == (400, {"webhook_url": ["Enter an http:// or https:// URL."]})

    def test_a_token_name_with_a_slash(self, admin_client):
        expires = (timezone.now() + timedelta(days=1)).isoformat()
        answer = admin_client.post(TOKENS, {"name": "line/3", "expires_at": expires}, format="json")
        assert (answer.status_code, answer.json()) == (400, {"name": ["At most 100 characters, without '/'."]})

    def test_enrolling_a_hostname_twice_and_a_bad_hostname(self, admin_client):
        expires = (timezone.now() + timedelta(days=1)).isoformat()
        token = admin_client.post(TOKENS, {"name": "line 3", "expires_at": expires, "max_uses": 5}, format="json")
        device = APIClient()
        device.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['token']}")
        assert device.post("/api/v1/agent/enroll", {"hostname": "gw-1"}, format="json").status_code == 201
        device.post("/api/v1/agent/enroll", {"hostname": "gw-1"}, format="json")  # used now: not replaceable
        ApiKey.objects.filter(enrolled_hostname="gw-1").update(last_used_at=timezone.now())
        again = device.post("/api/v1/agent/enroll", {"hostname": "gw-1", "replace": True}, format="json")
        assert (again.status_code, again.json()) == (
            409,
            {
                "detail": 'This hostname already has a key from this token; send "replace": true only if that key '
                "was never used."
            },
        )
        bad = device.post("/api/v1/agent/enroll", {"hostname": "gw 1"}, format="json")
        assert (bad.status_code, bad.json()) == (
            400,
            {"hostname": ["1 to 63 characters of A-Z, a-z, 0-9, '.' and '-'."]},
        )


class TestTheServices:
    """Rules the API's serializers catch first, still the service's own words for other callers."""

    def test_a_long_name_and_a_fractional_overlap(self, tenant, api_key):
        by = Caller.system(tenant_id=tenant.id)
        with pytest.raises(ValidationError) as long_name:
            services.api_key_create(by=by, name="x" * 201)
        assert long_name.value.message_dict == {"name": ["Ensure this field has no more than 200 characters."]}
        with pytest.raises(ValidationError) as overlap:
            services.api_key_rotate(by=by, api_key=api_key.api_key, overlap_seconds=1.5)
        assert overlap.value.message_dict == {"overlap_seconds": ["A whole number of seconds."]}
        with pytest.raises(ValidationError) as no_criterion:
            services.api_key_bulk_revoke(by=by)
        assert no_criterion.value.message_dict == {
            "detail": ["Give at least one of ids, created_before, unused_since."]
        }

    def test_the_policys_bounds(self, tenant):
        values = {"max_lifetime_days": 731, "notify_unused_after_days": 0, "notify_days_before_expiry": [7, 91]}
        with pytest.raises(ValidationError) as refused:
            services.api_key_policy_update(by=Caller.system(tenant_id=tenant.id), values=values)
        assert refused.value.message_dict == {
            "max_lifetime_days": ["Between 1 and 730, or empty for none."],
            "notify_unused_after_days": ["Between 1 and 365, or empty for none."],
            "notify_days_before_expiry": ["Each must be between 1 and 90."],
        }

    def test_a_revoked_key_is_not_changed(self, tenant, revoked_key):
        with pytest.raises(ValidationError) as refused:
            services.api_key_update(by=Caller.system(tenant_id=tenant.id), api_key=revoked_key, name="x")
        assert refused.value.messages == ["A revoked key cannot be changed."]

    def test_a_delivery_whose_endpoint_is_gone(self, tenant):
        by = Caller.system(tenant_id=tenant.id)
        webhooks.webhook_endpoint_set(by=by, url="https://hooks.example.com/haltless")
        delivery = webhooks.webhook_event_enqueue(by=by, type="api_key.rotated", data={})
        WebhookEndpoint.objects.all().delete()
        attempted = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
        assert (attempted.status, attempted.error) == ("failed", "No webhook URL is set.")


class TestTheAdmin:
    @pytest.fixture
    def console(self, client, admin_user):
        client.force_login(admin_user)
        return client

    def action(self, console, action: str, *rows, **extra):
        data = {"action": action, "_selected_action": [str(row.pk) for row in rows], "index": "0", **extra}
        return console.post(ADMIN_KEYS, data, follow=True).content.decode()

    def test_rotating_a_revoked_key(self, console, tenant):
        key = ApiKeyFactory(tenant=tenant)
        ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
        assert "A revoked key cannot be rotated." in self.action(console, "rotate_selected", key)

    def test_allowing_what_keys_use(self, console, tenant):
        revoked = ApiKeyFactory(tenant=tenant, revoked_at=timezone.now())
        assert "No key to change among those selected." in self.action(console, "allow_observed", revoked)
        key = ApiKeyFactory(tenant=tenant)
        now = timezone.now()
        ObservedIp.objects.create(api_key=key, network="10.20.3.4", requests=3, first_seen=now, last_seen=now)
        assert "Saved the allowlist of 1 key." in self.action(console, "allow_observed", key, confirm="yes")
        crowded = ApiKeyFactory(tenant=tenant)
        for n in range(51):
            ObservedIp.objects.create(api_key=crowded, network=f"10.0.{n}.1", requests=1, first_seen=now, last_seen=now)
        assert "51 networks observed; an allowlist holds at most 50." in self.action(console, "allow_observed", crowded)

    def test_the_policy_forms_days(self, console):
        page = console.post("/admin/apikeys/apikeypolicy/add/", {"notify_days_before_expiry": "7, soon"})
        assert "Whole numbers of days, separated by commas." in page.content.decode()
        page = console.post("/admin/apikeys/apikeypolicy/add/", {"notify_days_before_expiry": "91"})
        assert "Each must be between 1 and 90." in page.content.decode()


def test_the_issue_command_refuses_an_expiry_it_cannot_read(tenant):
    with pytest.raises(CommandError) as refused:
        call_command(
            "issue_api_key", "--tenant", str(tenant.pk), "--name", "k", "--expires-at", "soon", stderr=StringIO()
        )
    assert str(refused.value) == "--expires-at: 'soon' is not an ISO 8601 datetime, e.g. 2027-04-04T00:00:00Z."
