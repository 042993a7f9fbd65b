"""The plant-floor restrictions in the admin, through its real login form and CSRF-checked posts."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apikeys.models import ApiKey, ObservedIp
from audit.models import AuditEvent
from telemetry.tests.factories import MachineFactory

LIST_URL = "/admin/apikeys/apikey/"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
pytestmark = [pytest.mark.django_db]


def change_url(api_key) -> str:
    return f"/admin/apikeys/apikey/{api_key.pk}/change/"


class Browser:
    """A client that logs in through /admin/login/ and posts forms with their CSRF token."""

    def __init__(self, email: str, password: str):
        self.client = Client(enforce_csrf_checks=True)
        page = self.client.get("/admin/login/")
        response = self.client.post(
            "/admin/login/?next=/admin/",
            {"username": email, "password": password, "csrfmiddlewaretoken": self.token(page), "next": "/admin/"},
        )
        assert response.status_code == 302, response.content[:300]

    @staticmethod
    def token(page) -> str:
        return CSRF.search(page.content.decode()).group(1)

    def get(self, url):
        return self.client.get(url)

    def post(self, url, data, page=None):
        page = page or self.client.get(url)
        return self.client.post(url, {**data, "csrfmiddlewaretoken": self.token(page)})


@pytest.fixture
def staff(staff_user) -> Browser:
    return Browser("staff@haltless.test", "Staff-Password-42!")


@pytest.fixture
def gateway_key(api_key):
    return api_key.api_key


def change_form(api_key, **overrides) -> dict:
    data = {
        "name": api_key.name,
        "scopes": list(api_key.scopes),
        "expires_at_0": "",
        "expires_at_1": "",
        "machines": "",
        "allowed_cidrs": "",
        "requests_per_minute": "",
        "readings_per_minute": "",
    }
    data.update(overrides)
    return data


class TestChangeForm:
    def test_shows_and_saves_the_restrictions_through_the_service(self, staff, gateway_key, tenant):
        MachineFactory(tenant=tenant, external_id="line3-press")
        page = staff.get(change_url(gateway_key)).content.decode()
        for field in ("machines", "allowed_cidrs", "requests_per_minute", "readings_per_minute"):
            assert f'name="{field}"' in page
        response = staff.post(
            change_url(gateway_key),
            change_form(
                gateway_key,
                machines="line3-press",
                allowed_cidrs="10.20.0.0/16\n192.0.2.7",
                requests_per_minute="120",
            ),
        )
        assert response.status_code == 302, response.content.decode()[-3000:]
        gateway_key.refresh_from_db()
        assert gateway_key.allowed_cidrs == ["10.20.0.0/16", "192.0.2.7/32"]
        assert gateway_key.requests_per_minute == 120
        assert len(gateway_key.machine_ids) == 1
        event = AuditEvent.objects.get(action="api_key.update")
        assert set(event.changes) == {"machine_ids", "allowed_cidrs", "requests_per_minute"}
        page = staff.get(change_url(gateway_key)).content.decode()
        assert "line3-press" in page and "10.20.0.0/16" in page

    def test_bad_values_are_shown_and_nothing_is_saved(self, staff, gateway_key):
        response = staff.post(
            change_url(gateway_key),
            change_form(gateway_key, allowed_cidrs="10.0.0.1/8", machines="nope", requests_per_minute="99999999"),
        )
        assert response.status_code == 200
        page = response.content.decode()
        assert "&#x27;10.0.0.1/8&#x27; has host bits set; did you mean 10.0.0.0/8?" in page
        assert "Unknown machine: &#x27;nope&#x27;." in page
        assert "requests_per_minute: at most 12,000 on the professional tier." in page
        gateway_key.refresh_from_db()
        assert gateway_key.allowed_cidrs == [] and gateway_key.requests_per_minute is None
        assert not AuditEvent.objects.filter(action="api_key.update").exists()


class TestAllowWhatThisKeyUses:
    @pytest.fixture
    def observed(self, gateway_key):
        now = timezone.now()
        for network, requests in [("10.20.3.4", 40), ("2001:db8:1:2::/64", 7)]:
            ObservedIp.objects.create(
                api_key=gateway_key, network=network, requests=requests,
                first_seen=now - timedelta(days=2), last_seen=now - timedelta(hours=1),
            )  # fmt: skip

    def test_shows_the_resulting_list_and_saves_only_when_confirmed(self, staff, gateway_key, observed):
        action = {"action": "allow_observed", "_selected_action": [str(gateway_key.pk)]}
        review = staff.post(LIST_URL, action)
        assert review.status_code == 200
        page = review.content.decode()
        assert "Allow what these keys use?" in page
        assert re.search(r'class="resulting-allowlist">10\.20\.3\.4/32, 2001:db8:1:2::/64<', page)
        gateway_key.refresh_from_db()
        assert gateway_key.allowed_cidrs == []  # asked, not saved
        confirmed = staff.post(LIST_URL, {**action, "confirm": "yes"}, page=review)
        assert confirmed.status_code == 302
        gateway_key.refresh_from_db()
        assert gateway_key.allowed_cidrs == ["10.20.3.4/32", "2001:db8:1:2::/64"]
        assert AuditEvent.objects.get(action="api_key.update").changes["allowed_cidrs"] == [
            [],
            ["10.20.3.4/32", "2001:db8:1:2::/64"],
        ]

    def test_a_key_never_used_is_not_fenced_off_by_an_empty_list(self, staff, gateway_key):
        action = {"action": "allow_observed", "_selected_action": [str(gateway_key.pk)]}
        review = staff.post(LIST_URL, action)
        assert "No allowed use in the last 30 days: nothing to allow" in review.content.decode()
        staff.post(LIST_URL, {**action, "confirm": "yes"}, page=review)
        assert ApiKey.objects.get(pk=gateway_key.pk).allowed_cidrs == []
        assert not AuditEvent.objects.filter(action="api_key.update").exists()


class TestTenantAdmin:
    def test_a_tenant_admin_edits_their_keys_restrictions(self, admin_user, password, gateway_key):
        console = Browser(admin_user.email, password)
        response = console.post(change_url(gateway_key), change_form(gateway_key, allowed_cidrs="10.20.0.0/16"))
        assert response.status_code == 302, response.content.decode()[-2000:]
        gateway_key.refresh_from_db()
        assert gateway_key.allowed_cidrs == ["10.20.0.0/16"]
        assert AuditEvent.objects.get(action="api_key.update").actor_id == admin_user.pk

    def test_another_tenants_key_is_not_found(self, other_tenant_admin, password, gateway_key):
        console = Browser(other_tenant_admin.email, password)
        assert console.get(change_url(gateway_key)).status_code in (302, 404)
        review = console.post(LIST_URL, {"action": "allow_observed", "_selected_action": [str(gateway_key.pk)]})
        assert "Allow what these keys use?" not in review.content.decode()
        assert gateway_key.prefix not in console.get(LIST_URL).content.decode()
