import pytest

from audit.models import AuditEvent
from settings_app import access
from settings_app.models import RolePermission
from settings_app.tests.factories import RolePermissionFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/settings/role-permissions"
DOCS_EXAMPLE = {
    "operator": {
        "settings": ["tenant", "notifications", "units"],
        "nav": ["dashboard", "machines", "alerts", "maintenance", "work-orders"],
    },
    "viewer": {"settings": ["tenant", "units"], "nav": ["dashboard", "machines", "alerts"]},
}


def valid_body(**overrides):
    body = {
        "operator": {"settings": ["units", "ai"], "nav": ["dashboard", "reports"]},
        "viewer": {"settings": [], "nav": ["dashboard"]},
    }
    body.update(overrides)
    return body


class TestRead:
    def test_defaults_are_the_documented_example(self, viewer_client):
        response = viewer_client.get(URL)
        assert response.status_code == 200
        assert response.json() == DOCS_EXAMPLE

    def test_saved_role_replaces_its_default_only(self, operator_client, tenant):
        RolePermissionFactory(tenant=tenant, role="viewer", settings_tabs=["units"], nav_pages=["dashboard"])
        response = operator_client.get(URL)
        assert response.json() == {
            "operator": DOCS_EXAMPLE["operator"],
            "viewer": {"settings": ["units"], "nav": ["dashboard"]},
        }

    def test_other_tenants_settings_are_not_seen(self, admin_client, other_tenant):
        RolePermissionFactory(tenant=other_tenant, role="viewer", settings_tabs=[], nav_pages=[])
        assert admin_client.get(URL).json() == DOCS_EXAMPLE


class TestReplace:
    def test_admin_replaces_the_mapping(self, admin_client, admin_user, tenant):
        response = admin_client.put(URL, valid_body(), format="json")
        assert response.status_code == 200
        expected = {
            "operator": {"settings": ["units", "ai"], "nav": ["dashboard", "reports"]},
            "viewer": {"settings": [], "nav": ["dashboard"]},
        }
        assert response.json() == expected
        assert admin_client.get(URL).json() == expected
        assert RolePermission.objects.filter(tenant=tenant).count() == 2

    def test_lists_are_deduplicated_into_catalogue_order(self, admin_client):
        body = valid_body(operator={"settings": ["ai", "units", "ai"], "nav": ["settings", "dashboard", "settings"]})
        response = admin_client.put(URL, body, format="json")
        assert response.status_code == 200
        assert response.json()["operator"] == {"settings": ["units", "ai"], "nav": ["dashboard", "settings"]}

    def test_every_known_tab_and_page_is_accepted(self, admin_client):
        everything = {"settings": list(access.SETTINGS_TABS), "nav": list(access.NAV_PAGES)}
        response = admin_client.put(URL, {"operator": everything, "viewer": everything}, format="json")
        assert response.status_code == 200
        assert response.json()["viewer"] == everything

    def test_change_is_audited_without_noise(self, admin_client, admin_user, tenant):
        admin_client.put(URL, valid_body(viewer=DOCS_EXAMPLE["viewer"]), format="json")
        events = list(AuditEvent.objects.filter(tenant=tenant, action="settings.role_permissions.update"))
        assert len(events) == 1
        assert events[0].actor_id == admin_user.id
        # Only the role that changed from what it was (the default) is recorded.
        assert events[0].changes == {"operator": {"settings": ["units", "ai"], "nav": ["dashboard", "reports"]}}
        # The same PUT again changes nothing and records nothing.
        admin_client.put(URL, valid_body(viewer=DOCS_EXAMPLE["viewer"]), format="json")
        assert AuditEvent.objects.filter(action="settings.role_permissions.update").count() == 1

    def test_does_not_touch_another_tenant(self, admin_client, other_tenant_admin_client):
        admin_client.put(URL, valid_body(), format="json")
        assert other_tenant_admin_client.get(URL).json() == DOCS_EXAMPLE


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "errors"),
        [
            (
                valid_body(admin={"settings": [], "nav": []}),
                {"admin": ["Admins always see everything; their access cannot be restricted."]},
            ),
            (
                valid_body(guest={"settings": [], "nav": []}),
                {"guest": ["Unknown role 'guest'; configurable roles: operator, viewer."]},
            ),
            (
                valid_body(operator={"settings": ["units", "billing"], "nav": []}),
                {"operator": {"settings": {"1": ['Unknown settings tab "billing".']}}},
            ),
            (
                valid_body(viewer={"settings": [], "nav": ["casino"]}),
                {"viewer": {"nav": {"0": ['Unknown nav page "casino".']}}},
            ),
            (
                {"operator": valid_body()["operator"]},
                {"viewer": ["This field is required."]},
            ),
            (
                valid_body(viewer={"settings": []}),
                {"viewer": {"nav": ["This field is required."]}},
            ),
            (
                valid_body(viewer={"settings": [], "nav": [], "reports": ["x"]}),
                {"viewer": {"reports": ["Unknown field."]}},
            ),
            (
                valid_body(viewer={"settings": "units", "nav": []}),
                {"viewer": {"settings": ['Expected a list of items but got type "str".']}},
            ),
            (
                valid_body(viewer=["units"]),
                {"viewer": {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}},
            ),
        ],
    )
    def test_bad_bodies_are_400_and_change_nothing(self, admin_client, tenant, body, errors):
        response = admin_client.put(URL, body, format="json")
        assert response.status_code == 400
        assert response.json() == errors
        assert not RolePermission.objects.filter(tenant=tenant).exists()

    def test_patch_is_not_offered(self, admin_client):
        response = admin_client.patch(URL, valid_body(), format="json")
        assert response.status_code == 405
        assert response.json() == {"detail": 'Method "PATCH" not allowed.'}


class TestService:
    def test_admin_role_is_refused_by_the_service_too(self, tenant):
        from django.core.exceptions import ValidationError

        from core.caller import Caller
        from settings_app.services import role_permissions_update

        with pytest.raises(ValidationError) as exc:
            role_permissions_update(
                by=Caller.system(tenant_id=tenant.pk), permissions={"admin": {"settings": [], "nav": []}}
            )
        assert exc.value.message_dict == {"admin": ["Admins always see everything; their access cannot be restricted."]}

    def test_unknown_tabs_and_roles_are_refused_by_the_service_in_the_apis_words(self, tenant):
        from django.core.exceptions import ValidationError

        from core.caller import Caller
        from settings_app.services import role_permissions_update

        with pytest.raises(ValidationError) as exc:
            role_permissions_update(
                by=Caller.system(tenant_id=tenant.pk),
                permissions={"viewer": {"settings": ["units", "billing"], "nav": ["casino"]}, "guest": {}},
            )
        assert exc.value.message_dict == {
            "viewer": ['Unknown settings tab "billing".', 'Unknown nav page "casino".'],
            "guest": ["Unknown role 'guest'; configurable roles: operator, viewer."],
        }
        assert not RolePermission.objects.exists()
