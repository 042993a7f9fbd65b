"""A tenant admin's console in a real browser (headless Chromium) against a live server."""

import pytest

from apikeys import keys
from apikeys.models import ApiKey
from core.admin_site import LOGIN_REFUSED
from settings_app.models import RolePermission
from telemetry.models import Machine
from telemetry.tests.factories import MachineFactory
from tenants.tests.factories import TenantFactory
from users.models import Role, User
from users.services import LAST_ADMIN_DEMOTION
from users.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def acme(transactional_db):
    tenant = TenantFactory(name="Acme Plant")
    return {
        "tenant": tenant,
        "admin": UserFactory(tenant=tenant, role=Role.ADMIN, email="admin@acme.test", full_name="Ada Admin"),
        "operator": UserFactory(tenant=tenant, role=Role.OPERATOR, email="operator@acme.test", full_name="Otto Op"),
    }


@pytest.fixture
def other_works(transactional_db):
    tenant = TenantFactory(name="Other Works")
    UserFactory(tenant=tenant, role=Role.ADMIN, email="admin@other.test")
    return {"tenant": tenant, "machine": MachineFactory(tenant=tenant, external_id="their-press", name="Their press")}


class TestTenantAdminConsole:
    def test_the_whole_round(self, browser, acme, other_works):
        browser.log_in("admin@acme.test", DEFAULT_PASSWORD)
        assert browser.path == "/admin/"
        assert "Haltless administration: Acme Plant" in browser.text
        assert "Tenants" not in browser.text and "Groups" not in browser.text

        # A machine with two sensors.
        browser.open("/admin/telemetry/machine/add/")
        assert not browser.find_all('[name="tenant"]')
        browser.fill("external_id", "press-7")
        browser.fill("name", "Press 7")
        browser.fill("location", "Hall B")
        browser.fill("new_sensors-0-key", "bearing_temp")
        browser.select("new_sensors-0-kind", "Temperature")
        browser.fill("new_sensors-1-key", "oil_pressure")
        browser.select("new_sensors-1-kind", "Pressure")
        browser.submit("_save")
        assert any("was added successfully" in m for m in browser.messages()), browser.errors()
        machine = Machine.objects.get(external_id="press-7")
        assert machine.tenant == acme["tenant"]
        assert sorted(machine.sensors.values_list("key", "kind")) == [
            ("bearing_temp", "temperature"),
            ("oil_pressure", "pressure"),
        ]

        # A key, shown once; a reload makes no second one; then revoked.
        browser.open("/admin/apikeys/apikey/add/")
        assert not browser.find_all('[name="tenant"]')
        browser.fill("name", "line 7 agent")
        browser.submit("_save")
        secret = browser.find("#revealed-secret").get_attribute("value")
        assert keys.is_well_formed(secret)
        browser.reload()
        assert "This secret was already shown" in browser.text and secret not in browser.driver.page_source
        assert ApiKey.objects.filter(tenant=acme["tenant"]).count() == 1
        api_key = ApiKey.objects.get()
        browser.open("/admin/apikeys/apikey/")
        browser.check("_selected_action", str(api_key.pk))
        browser.select("action", "Revoke selected keys")
        browser.click('button[name="index"]')
        assert "Revoked 1 API key." in browser.messages()
        assert ApiKey.objects.get().is_revoked

        # The operator becomes a viewer.
        browser.open(f"/admin/users/user/{acme['operator'].pk}/change/")
        assert not browser.find_all('[name="is_staff"]') and not browser.find_all('[name="tenant"]')
        browser.select("role", "Viewer")
        browser.submit("_save")
        assert User.objects.get(pk=acme["operator"].pk).role == Role.VIEWER

        # The last admin cannot be demoted; the page says why.
        browser.open(f"/admin/users/user/{acme['admin'].pk}/change/")
        browser.select("role", "Operator")
        browser.submit("_save")
        assert LAST_ADMIN_DEMOTION in browser.errors()
        assert User.objects.get(pk=acme["admin"].pk).role == Role.ADMIN

        # Role permissions with checkboxes.
        browser.open("/admin/settings_app/rolepermission/add/")
        browser.select("role", "Viewer")
        browser.check("settings_tabs", "units")
        browser.check("nav_pages", "dashboard")
        browser.check("nav_pages", "reports")
        browser.submit("_save")
        saved = RolePermission.objects.get(tenant=acme["tenant"], role="viewer")
        assert (saved.settings_tabs, sorted(saved.nav_pages)) == (["units"], ["dashboard", "reports"])

        # Another tenant's machine, by URL: not found.
        browser.open(f"/admin/telemetry/machine/{other_works['machine'].pk}/change/")
        assert "There is no machine with this id." in browser.text
        assert "Their press" not in browser.driver.page_source
        browser.open("/admin/telemetry/machine/")
        assert "Press 7" in browser.text and "Their press" not in browser.text

        browser.log_out()
        assert "Logged out" in browser.text


class TestWhoGetsIn:
    def test_an_operator_is_refused_at_the_login_form(self, browser, acme):
        browser.log_in("operator@acme.test", DEFAULT_PASSWORD)
        assert browser.path.startswith("/admin/login/")
        assert LOGIN_REFUSED in browser.errors()

    def test_platform_staff_see_both_tenants(self, browser, acme, other_works):
        MachineFactory(tenant=acme["tenant"], external_id="acme-press", name="Acme press")
        User.objects.create_superuser("staff@haltless.test", "Staff-Pass-Phrase-9")
        browser.log_in("staff@haltless.test", "Staff-Pass-Phrase-9")
        browser.open("/admin/telemetry/machine/")
        assert "Acme press" in browser.text and "Their press" in browser.text
        browser.open("/admin/tenants/tenant/")
        assert "Acme Plant" in browser.text and "Other Works" in browser.text
