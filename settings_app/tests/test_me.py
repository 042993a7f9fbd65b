import pytest

from settings_app import access
from settings_app.tests.factories import RolePermissionFactory, UnitPreferenceFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/me"


class TestMe:
    def test_admin_sees_everything(self, admin_client, admin_user, tenant):
        response = admin_client.get(URL)
        assert response.status_code == 200
        assert response.json() == {
            "user": {
                "id": str(admin_user.id),
                "email": "admin@acme.test",
                "full_name": admin_user.full_name,
                "role": "admin",
            },
            "tenant": {"id": str(tenant.id), "name": "Acme Plant", "tier": "professional", "retention_days": 90},
            "permissions": {"settings": list(access.SETTINGS_TABS), "nav": list(access.NAV_PAGES)},
            "units": {"temperature": "celsius", "pressure": "bar", "vibration": "mm_s"},
        }

    def test_admin_cannot_be_restricted(self, admin_client, tenant):
        RolePermissionFactory(tenant=tenant, role="operator", settings_tabs=[], nav_pages=[])
        RolePermissionFactory(tenant=tenant, role="viewer", settings_tabs=[], nav_pages=[])
        assert admin_client.get(URL).json()["permissions"]["settings"] == list(access.SETTINGS_TABS)

    def test_operator_gets_the_default_lists(self, operator_client):
        body = operator_client.get(URL).json()
        assert body["user"]["role"] == "operator"
        assert body["permissions"] == access.DEFAULT_ROLE_PERMISSIONS["operator"]

    def test_viewer_gets_what_the_admin_saved(self, viewer_client, tenant):
        RolePermissionFactory(tenant=tenant, role="viewer", settings_tabs=["units"], nav_pages=["machines"])
        assert viewer_client.get(URL).json()["permissions"] == {"settings": ["units"], "nav": ["machines"]}

    def test_another_tenants_settings_do_not_apply(self, viewer_client, other_tenant):
        RolePermissionFactory(tenant=other_tenant, role="viewer", settings_tabs=[], nav_pages=[])
        assert viewer_client.get(URL).json()["permissions"] == access.DEFAULT_ROLE_PERMISSIONS["viewer"]

    def test_units_are_the_callers_own(self, viewer_client, viewer_user, operator_user):
        UnitPreferenceFactory(user=viewer_user, temperature="kelvin", pressure="psi")
        UnitPreferenceFactory(user=operator_user, temperature="fahrenheit")
        assert viewer_client.get(URL).json()["units"] == {
            "temperature": "kelvin",
            "pressure": "psi",
            "vibration": "mm_s",
        }

    def test_unknown_tier_gives_no_retention_days(self, admin_client, tenant):
        tenant.tier = "legacy"
        tenant.save()
        assert admin_client.get(URL).json()["tenant"]["retention_days"] is None

    @pytest.mark.parametrize("client_fixture", ["admin_client", "viewer_client"])
    def test_few_queries(self, request, client_fixture, django_assert_max_num_queries):
        client = request.getfixturevalue(client_fixture)
        # Authentication's user, the tenant, the role's row (not for admins), the units.
        with django_assert_max_num_queries(4):
            assert client.get(URL).status_code == 200
