"""The tenant admin's console, page by page (unit level: force_login; the login itself is
tested over HTTP in users/tests/test_admin_login.py and in the browser suite)."""

import pytest
from django.test import Client

from audit.models import AuditEvent
from retention.models import RetentionRun
from users.models import Role, User
from users.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


class TestUsersPage:
    def test_a_new_user_joins_the_admins_tenant_with_the_password_policy(self, console, tenant, other_tenant):
        add = "/admin/users/user/add/"
        weak = {"email": "new@acme.test", "role": "operator", "password1": "1234567890", "password2": "1234567890"}
        page = console.post(add, {**weak, "tenant": str(other_tenant.pk)}).content.decode()
        assert "This password is too common." in page or "This password is entirely numeric." in page
        assert not User.objects.filter(email="new@acme.test").exists()
        strong = {**weak, "password1": "Plant-Floor-Secret-77", "password2": "Plant-Floor-Secret-77"}
        response = console.post(add, {**strong, "tenant": str(other_tenant.pk)})
        assert response.status_code == 302
        created = User.objects.get(email="new@acme.test")
        assert (created.tenant_id, created.role, created.is_staff) == (tenant.id, Role.OPERATOR, False)
        assert AuditEvent.objects.filter(action="user.create", tenant=tenant).count() == 1

    def test_deactivate_and_reactivate_through_the_services(self, console, tenant, operator_user):
        url = "/admin/users/user/"
        console.post(url, {"action": "deactivate_users", "_selected_action": [str(operator_user.pk)]})
        operator_user.refresh_from_db()
        assert not operator_user.is_active
        console.post(url, {"action": "reactivate_users", "_selected_action": [str(operator_user.pk)]})
        operator_user.refresh_from_db()
        assert operator_user.is_active
        actions = list(AuditEvent.objects.filter(target_id=str(operator_user.pk)).values_list("action", flat=True))
        assert sorted(actions) == ["user.deactivate", "user.reactivate"]

    def test_an_action_on_another_tenants_user_does_nothing(self, console, other_tenant):
        theirs = UserFactory(tenant=other_tenant, role=Role.OPERATOR)
        console.post("/admin/users/user/", {"action": "deactivate_users", "_selected_action": [str(theirs.pk)]})
        theirs.refresh_from_db()
        assert theirs.is_active


class TestRetentionRunNow:
    def test_run_now_requests_a_run_for_the_admins_tenant(self, console, tenant):
        page = console.get("/admin/retention/retentionrun/").content.decode()
        assert 'id="run-now"' in page
        response = console.post("/admin/retention/retentionrun/run-now/", follow=True)
        assert response.status_code == 200
        run = RetentionRun.objects.get()
        assert run.tenant_id == tenant.id and run.trigger == RetentionRun.Trigger.MANUAL
        assert any("Retention run requested" in str(m) for m in response.context["messages"])

    def test_run_now_is_a_post(self, console):
        assert console.get("/admin/retention/retentionrun/run-now/").status_code == 405
        assert not RetentionRun.objects.exists()
