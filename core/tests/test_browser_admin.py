"""The admin in a real browser (headless Chromium) against a live server, as staff use it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys import keys
from apikeys.models import ApiKey
from core.tests.live_admin import WRONG_LOGIN_MESSAGE
from retention.tests.factories import RetentionRunFactory
from telemetry.services import readings_bulk_insert
from telemetry.tests.factories import MachineFactory, SensorFactory
from tenants.tests.factories import TenantFactory
from users.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STAFF_EMAIL = "staff@haltless.test"
STAFF_PASSWORD = "Staff-Pass-Phrase-9"


@pytest.fixture
def staff(transactional_db):
    return User.objects.create_superuser(STAFF_EMAIL, STAFF_PASSWORD)


class TestLogin:
    def test_staff_logs_in_with_the_form_and_logs_out(self, browser, staff):
        browser.log_in(STAFF_EMAIL, STAFF_PASSWORD)
        assert browser.path == "/admin/"
        assert "Site administration" in browser.text
        browser.log_out()
        assert "Logged out" in browser.text
        browser.open("/admin/")
        assert browser.path.startswith("/admin/login/")

    def test_a_wrong_password_is_refused_with_the_message(self, browser, staff):
        browser.log_in(STAFF_EMAIL, "not-the-password")
        assert browser.path.startswith("/admin/login/")
        assert WRONG_LOGIN_MESSAGE in browser.errors()


@pytest.fixture
def plant(transactional_db):
    """A tenant with a machine, two sensors, readings and a finished retention run."""
    tenant = TenantFactory(name="Acme Plant")
    machine = MachineFactory(tenant=tenant, external_id="press-1", name="Press 1", location="Hall A")
    sensor = SensorFactory(machine=machine, key="bearing_temp", kind="temperature")
    SensorFactory(machine=machine, key="spindle_vib", kind="vibration")
    start = timezone.now() - timedelta(hours=1)
    readings_bulk_insert(
        tenant_id=tenant.id, rows=[(sensor.pk, start + timedelta(minutes=i), 40.0 + i) for i in range(5)]
    )
    RetentionRunFactory(tenant=tenant, cutoff=timezone.now() - timedelta(days=7), readings_deleted=12)
    return tenant


class TestStaffConsole:
    def test_key_shown_once_reload_revoke_then_the_records_then_log_out(self, browser, staff, plant):
        browser.log_in(STAFF_EMAIL, STAFF_PASSWORD)

        # Create an API key: the key is on the page after the redirect, once.
        browser.open("/admin/apikeys/apikey/add/")
        browser.select("tenant", "Acme Plant")
        browser.fill("name", "line 3 agent")
        browser.submit("_save")
        assert browser.path.endswith("/revealed/")
        secret = browser.find("#revealed-secret").get_attribute("value")
        assert keys.is_well_formed(secret)
        assert "Copy this secret now. It is shown only once" in browser.text
        api_key = ApiKey.objects.get()
        assert api_key.key_digest == keys.digest(secret)

        # Reloading shows that it was shown, and makes no second key.
        browser.reload()
        assert not browser.find_all("#revealed-secret")
        assert "This secret was already shown" in browser.text
        assert secret not in browser.driver.page_source
        assert ApiKey.objects.count() == 1

        # Revoke it from the list.
        browser.open("/admin/apikeys/apikey/")
        browser.check("_selected_action", str(api_key.pk))
        browser.select("action", "Revoke selected keys")
        browser.click('button[name="index"]')
        assert "Revoked 1 API key." in browser.messages()
        assert ApiKey.objects.get().is_revoked

        # The records: machine (with its sensors), readings, retention runs, audit events.
        browser.open("/admin/telemetry/machine/")
        browser.click_link("Press 1")
        assert "bearing_temp" in browser.text and "spindle_vib" in browser.text
        browser.open("/admin/telemetry/sensorreading/")
        assert browser.text.count("press-1/bearing_temp") == 5
        browser.open("/admin/retention/retentionrun/")
        assert "Succeeded" in browser.text
        browser.open("/admin/audit/auditevent/")
        assert "api_key.create" in browser.text and "api_key.revoke" in browser.text

        browser.log_out()
        assert "Logged out" in browser.text
        browser.open("/admin/apikeys/apikey/")
        assert browser.path.startswith("/admin/login/")
