"""The tenant admin's console for a key's life (issue 16 item 8): rotate, disable/enable, the policy form.

Through the real login form and CSRF, over HTTP against a live server (core.tests.live_admin).
"""

import re
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from apikeys.models import ApiKey, ApiKeyPolicy
from apikeys.tests.factories import ApiKeyFactory
from audit.models import AuditEvent
from core.tests.live_admin import AdminSession
from users.tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/apikeys/apikey/"
POLICY_ADD = "/admin/apikeys/apikeypolicy/add/"
SECRET = re.compile(r"hlts_[0-9A-Za-z]{38}")


@pytest.fixture
def console(live_server, admin_user) -> AdminSession:
    session = AdminSession(live_server.url)
    assert "Log out" in session.login(admin_user.email, DEFAULT_PASSWORD).text
    return session


def whoami(live_server, secret: str) -> requests.Response:
    return requests.get(f"{live_server.url}/api/v1/agent/whoami", headers={"X-API-Key": secret}, timeout=20)


def run_action(console: AdminSession, action: str, *keys) -> requests.Response:
    return console.post_form(
        CHANGELIST, {"action": action, "_selected_action": [str(k.pk) for k in keys], "index": "0"}
    )


class TestRotateAction:
    def test_shows_the_new_secret_once_and_the_old_one_keeps_working(self, console, live_server, tenant, admin_user):
        key = ApiKeyFactory(tenant=tenant, name="gateway")
        assert whoami(live_server, key.secret).status_code == 200
        page = run_action(console, "rotate_selected", key)
        assert page.status_code == 200
        assert "/revealed/" in page.url  # after a redirect
        shown = SECRET.findall(page.text)
        assert len(set(shown)) == 1
        new_secret = shown[0]
        assert new_secret != key.secret
        assert whoami(live_server, new_secret).json()["secret"] == "current"
        assert whoami(live_server, key.secret).json()["secret"] == "previous"
        again = console.get(page.url)
        assert new_secret not in again.text and "Already shown" in again.text
        event = AuditEvent.objects.get(action="api_key.rotate")
        assert event.actor_id == admin_user.id

    def test_one_key_at_a_time(self, console, tenant):
        first, second = ApiKeyFactory(tenant=tenant), ApiKeyFactory(tenant=tenant)
        page = run_action(console, "rotate_selected", first, second)
        assert "Select exactly one key to rotate." in page.text
        assert not SECRET.search(page.text)
        assert not AuditEvent.objects.filter(action="api_key.rotate").exists()

    def test_a_disabled_key_is_not_rotated(self, console, tenant):
        key = ApiKeyFactory(tenant=tenant, disabled=True)
        page = run_action(console, "rotate_selected", key)
        assert "Not rotated: A disabled key cannot be rotated; enable it first." in page.text
        assert ApiKey.objects.get(pk=key.pk).key_digest == key.key_digest


class TestDisableEnable:
    def test_disable_then_enable(self, console, live_server, tenant, admin_user):
        key = ApiKeyFactory(tenant=tenant)
        assert "Disabled 1 API key." in run_action(console, "disable_selected", key).text
        assert whoami(live_server, key.secret).json() == {"detail": "API key is disabled."}
        assert "Enabled 1 API key." in run_action(console, "enable_selected", key).text
        assert whoami(live_server, key.secret).status_code == 200
        assert AuditEvent.objects.filter(action="api_key.update", actor_id=admin_user.id).count() == 2

    def test_another_tenants_key_cannot_be_selected(self, console, live_server, other_tenant):
        theirs = ApiKeyFactory(tenant=other_tenant)
        run_action(console, "disable_selected", theirs)
        assert ApiKey.objects.get(pk=theirs.pk).disabled is False


class TestPolicyForm:
    def test_saving_the_policy_audits_and_rewrites_no_key(self, console, tenant, admin_user):
        key = ApiKeyFactory(tenant=tenant)
        before = ApiKey.objects.filter(pk=key.pk).values().get()
        page = console.post_form(
            POLICY_ADD,
            {
                "max_lifetime_days": "30",
                "require_expiry": "on",
                "notify_days_before_expiry": "14, 3",
                "notify_unused_after_days": "",
                "leaked_key_action": "notify",
                "_save": "Save",
            },
        )
        assert page.status_code == 200 and "errornote" not in page.text, page.text[:2000]
        policy = ApiKeyPolicy.objects.get(tenant=tenant)
        assert policy.max_lifetime_days == 30 and policy.notify_days_before_expiry == [14, 3]
        assert ApiKey.objects.filter(pk=key.pk).values().get() == before
        assert AuditEvent.objects.get(action="api_key_policy.update").actor_id == admin_user.id

    def test_out_of_range_values_are_refused(self, console, tenant):
        page = console.post_form(
            POLICY_ADD,
            {"max_lifetime_days": "731", "notify_days_before_expiry": "7, 0", "leaked_key_action": "revoke"},
        )
        assert "Between 1 and 730, or empty for none." in page.text
        assert "Each must be between 1 and 90." in page.text
        assert not ApiKeyPolicy.objects.exists()

    def test_a_new_key_against_the_policy_is_refused_in_the_add_form(self, console, tenant):
        ApiKeyPolicy.objects.create(tenant=tenant, max_lifetime_days=30)
        expiry = timezone.now() + timedelta(days=60)
        page = console.post_form(
            "/admin/apikeys/apikey/add/",
            {
                "name": "too long",
                "scopes": ["ingest"],
                "expires_at_0": expiry.strftime("%Y-%m-%d"),
                "expires_at_1": expiry.strftime("%H:%M:%S"),
                "allowed_cidrs": "",
            },
        )
        assert "allows a key to live at most 30 days" in page.text
        assert not ApiKey.objects.filter(name="too long").exists()
