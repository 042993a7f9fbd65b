"""The Django admin keeps the API's rules: services do the work, no tenant loses its last admin."""

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import RequestFactory

from audit.models import AuditEvent
from users.admin import UserAdmin
from users.models import Role, User
from users.services import LAST_ADMIN_DEACTIVATION, LAST_ADMIN_DEMOTION, SELF_DEACTIVATION
from users.tests.factories import UserFactory
from users.tests.helpers import PROFILE_URL, bearer
from users.tokens import token_pair_for

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/users/user/"


def change_url(user) -> str:
    return f"/admin/users/user/{user.pk}/change/"


def run_action(client, action: str, users) -> list[str]:
    response = client.post(CHANGELIST, {"action": action, "_selected_action": [str(u.pk) for u in users]}, follow=True)
    assert response.status_code == 200
    return [str(m) for m in get_messages(response.wsgi_request)]


def change_form_data(user, **overrides) -> dict:
    data = {
        "email": user.email,
        "full_name": user.full_name,
        "role": user.role,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "groups": [],
        "user_permissions": [],
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v != ""}


class TestChangelist:
    def test_users_are_filtered_by_tenant_role_and_activity(
        self, staff_client, admin_user, operator_user, inactive_user, other_tenant_admin
    ):
        response = staff_client.get(
            CHANGELIST,
            {"tenant__id__exact": str(admin_user.tenant_id), "role__exact": "operator", "is_active__exact": "1"},
        )
        assert response.status_code == 200
        listed = [user.email for user in response.context["cl"].result_list]
        assert listed == ["operator@acme.test"]

    def test_users_cannot_be_deleted(self, staff_client, operator_user):
        response = staff_client.get(CHANGELIST)
        assert "delete_selected" not in dict(response.context["action_form"].fields["action"].choices)
        assert staff_client.get(f"/admin/users/user/{operator_user.pk}/delete/").status_code == 403
        assert User.objects.filter(pk=operator_user.pk).exists()


class TestActions:
    def test_deactivate_ends_the_sessions_and_is_audited(self, staff_client, staff_user, admin_user, operator_user):
        version = operator_user.token_version
        messages = run_action(staff_client, "deactivate_users", [operator_user])
        assert messages == ["1 user(s) deactivated."]
        operator_user.refresh_from_db()
        assert (operator_user.is_active, operator_user.token_version) == (False, version + 1)
        event = AuditEvent.objects.get(action="user.deactivate")
        assert (event.actor_id, event.tenant_id) == (staff_user.id, operator_user.tenant_id)

    def test_the_last_active_admin_is_not_deactivated(self, staff_client, admin_user):
        messages = run_action(staff_client, "deactivate_users", [admin_user])
        assert messages == ["admin@acme.test: This user is the tenant's last active admin and cannot be deactivated."]
        admin_user.refresh_from_db()
        assert admin_user.is_active is True

    def test_of_two_admins_selected_together_one_stays(self, staff_client, admin_user, second_admin):
        messages = run_action(staff_client, "deactivate_users", [admin_user, second_admin])
        assert messages == [f"second-admin@acme.test: {LAST_ADMIN_DEACTIVATION}", "1 user(s) deactivated."]
        assert User.objects.filter(tenant=admin_user.tenant, role=Role.ADMIN, is_active=True).count() == 1

    def test_staff_cannot_deactivate_themselves(self, staff_client, staff_user):
        messages = run_action(staff_client, "deactivate_users", [staff_user])
        assert messages == [f"staff@haltless.test: {SELF_DEACTIVATION}"]
        staff_user.refresh_from_db()
        assert staff_user.is_active is True

    def test_reactivate_lets_the_user_in_again_with_new_tokens_only(
        self, staff_client, inactive_user, password, api_client
    ):
        messages = run_action(staff_client, "reactivate_users", [inactive_user])
        assert messages == ["1 user(s) reactivated."]
        inactive_user.refresh_from_db()
        assert inactive_user.is_active is True
        assert AuditEvent.objects.filter(action="user.reactivate", target_id=str(inactive_user.pk)).exists()
        login = api_client.post("/api/v1/auth/token", {"email": inactive_user.email, "password": password})
        assert login.status_code == 200


class TestChangeForm:
    def test_a_role_change_goes_through_the_service(self, staff_client, admin_user, operator_user):
        response = staff_client.post(change_url(operator_user), change_form_data(operator_user, role="admin"))
        assert response.status_code == 302
        operator_user.refresh_from_db()
        assert operator_user.role == Role.ADMIN
        assert AuditEvent.objects.get(action="user.role_change").changes == {
            "role": {"from": "operator", "to": "admin"}
        }

    def test_the_last_admin_cannot_be_demoted(self, staff_client, admin_user):
        response = staff_client.post(change_url(admin_user), change_form_data(admin_user, role="viewer"))
        assert response.status_code == 200
        assert LAST_ADMIN_DEMOTION in response.context["adminform"].form.errors["role"]
        admin_user.refresh_from_db()
        assert admin_user.role == Role.ADMIN

    def test_the_last_admin_cannot_be_deactivated(self, staff_client, admin_user):
        response = staff_client.post(change_url(admin_user), change_form_data(admin_user, is_active=""))
        assert response.status_code == 200
        assert LAST_ADMIN_DEACTIVATION in response.context["adminform"].form.errors["is_active"]
        admin_user.refresh_from_db()
        assert admin_user.is_active is True

    def test_deactivation_through_the_form_revokes_tokens(self, staff_client, admin_user, operator_user):
        version = operator_user.token_version
        response = staff_client.post(change_url(operator_user), change_form_data(operator_user, is_active=""))
        assert response.status_code == 302
        operator_user.refresh_from_db()
        assert (operator_user.is_active, operator_user.token_version) == (False, version + 1)

    def test_other_fields_are_saved_and_emails_lower_cased(self, staff_client, operator_user):
        data = change_form_data(operator_user, full_name="Renamed", email="Renamed@ACME.test")
        response = staff_client.post(change_url(operator_user), data)
        assert response.status_code == 302
        operator_user.refresh_from_db()
        assert (operator_user.full_name, operator_user.email) == ("Renamed", "renamed@acme.test")

    def test_the_tenant_cannot_be_changed(self, staff_client, admin_user, other_tenant):
        data = change_form_data(admin_user, tenant=str(other_tenant.pk))
        assert staff_client.post(change_url(admin_user), data).status_code == 302
        admin_user.refresh_from_db()
        assert admin_user.tenant_id != other_tenant.pk

    def test_a_race_past_the_form_check_is_stopped_by_the_service(self, staff_user, admin_user, second_admin):
        """The form saw two admins; by the time it saves, the other one is gone."""
        model_admin = UserAdmin(User, admin.site)
        request = RequestFactory().post(change_url(admin_user))
        request.user = staff_user
        request.session = {}
        request._messages = FallbackStorage(request)
        form_class = model_admin.get_form(request, admin_user, change=True)
        form = form_class(change_form_data(admin_user, role="viewer"), instance=admin_user)
        assert form.is_valid(), form.errors
        User.objects.filter(pk=second_admin.pk).update(is_active=False)

        model_admin.save_form(request, form, change=True)

        assert [str(m) for m in get_messages(request)] == [f"admin@acme.test: {LAST_ADMIN_DEMOTION}"]
        assert User.objects.get(pk=admin_user.pk).role == Role.ADMIN


class TestAddForm:
    def add(self, client, **overrides):
        data = {
            "email": "New.Hire@ACME.test",
            "tenant": "",
            "role": "operator",
            "full_name": "New Hire",
            "password1": "Copper-Valve-Meadow-3",
            "password2": "Copper-Valve-Meadow-3",
        }
        data.update(overrides)
        return client.post("/admin/users/user/add/", data)

    def test_adding_goes_through_the_service(self, staff_client, staff_user, tenant, api_client):
        response = self.add(staff_client, tenant=str(tenant.pk))
        assert response.status_code == 302
        user = User.objects.get(email="new.hire@acme.test")
        assert (user.tenant_id, user.role, user.full_name) == (tenant.pk, Role.OPERATOR, "New Hire")
        assert response.url == change_url(user)
        event = AuditEvent.objects.get(action="user.create")
        assert (event.actor_id, event.target_id) == (staff_user.id, str(user.pk))
        login = api_client.post(
            "/api/v1/auth/token", {"email": "new.hire@acme.test", "password": "Copper-Valve-Meadow-3"}
        )
        assert login.status_code == 200

    def test_a_tenant_is_required(self, staff_client):
        response = self.add(staff_client)
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["tenant"] == ["This field is required."]
        assert not User.objects.filter(email="new.hire@acme.test").exists()

    def test_a_weak_password_is_refused(self, staff_client, tenant):
        response = self.add(staff_client, tenant=str(tenant.pk), password1="password", password2="password")
        assert response.status_code == 200
        assert "This password is too common." in response.context["adminform"].form.errors["password2"]

    def test_a_taken_email_in_another_case_is_refused(self, staff_client, tenant, operator_user):
        response = self.add(staff_client, tenant=str(tenant.pk), email="OPERATOR@acme.test")
        assert response.status_code == 200
        assert "email" in response.context["adminform"].form.errors
        assert User.objects.filter(email__iexact="operator@acme.test").count() == 1


class TestServicesForPlatformStaff:
    def test_a_staff_user_without_tenant_is_deactivated_without_a_tenant_audit(self, staff_client):
        other_staff = User.objects.create_superuser("ops@haltless.test", "Other-Staff-Phrase-4")
        assert run_action(staff_client, "deactivate_users", [other_staff]) == ["1 user(s) deactivated."]
        other_staff.refresh_from_db()
        assert other_staff.is_active is False
        assert not AuditEvent.objects.exists()

    def test_actions_on_users_of_several_tenants(self, staff_client, admin_user, other_tenant_admin, tenant):
        extra = UserFactory(tenant=tenant, role=Role.VIEWER)
        messages = run_action(staff_client, "deactivate_users", [admin_user, other_tenant_admin, extra])
        assert sorted(messages) == sorted(
            [
                f"admin@acme.test: {LAST_ADMIN_DEACTIVATION}",
                f"admin@other.test: {LAST_ADMIN_DEACTIVATION}",
                "1 user(s) deactivated.",
            ]
        )


class TestPasswordInTheAdmin:
    def password_url(self, user) -> str:
        return f"/admin/users/user/{user.pk}/password/"

    def test_setting_a_password_revokes_the_users_tokens(self, staff_client, operator_user):
        access = token_pair_for(operator_user)["access"]
        data = {"password1": "Brass-Pulley-Harbor-5", "password2": "Brass-Pulley-Harbor-5", "usable_password": "true"}
        assert staff_client.post(self.password_url(operator_user), data).status_code == 302
        assert bearer(access).get(PROFILE_URL).status_code == 401

    def test_disabling_password_login_revokes_the_users_tokens(self, staff_client, operator_user):
        access = token_pair_for(operator_user)["access"]
        data = {"usable_password": "false", "unset-password": "1"}
        assert staff_client.post(self.password_url(operator_user), data).status_code == 302
        operator_user.refresh_from_db()
        assert not operator_user.has_usable_password()
        assert bearer(access).get(PROFILE_URL).status_code == 401
