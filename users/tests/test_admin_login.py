"""Logging in to the Django admin through its real login form, over HTTP, against a live server."""

import re

import pytest

from core.admin_site import LOGIN_REFUSED
from core.tests.live_admin import WRONG_LOGIN_MESSAGE, AdminSession
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)

STAFF_EMAIL = "staff@haltless.test"
STAFF_PASSWORD = "Staff-Pass-Phrase-9"


@pytest.fixture
def staff(transactional_db):
    return User.objects.create_superuser(STAFF_EMAIL, STAFF_PASSWORD)


@pytest.fixture
def session(live_server) -> AdminSession:
    return AdminSession(live_server.url)


class TestTheLoginForm:
    def test_staff_logs_in_with_email_and_password(self, session, staff):
        response = session.login(STAFF_EMAIL, STAFF_PASSWORD)
        assert response.status_code == 200
        assert response.url == session.url("/admin/")
        assert "Site administration" in response.text
        assert WRONG_LOGIN_MESSAGE not in response.text

    def test_the_email_is_case_insensitive(self, session, staff):
        response = session.login(STAFF_EMAIL.upper(), STAFF_PASSWORD)
        assert response.url == session.url("/admin/")

    def test_a_wrong_password_shows_the_form_again_with_the_message(self, session, staff):
        response = session.login(STAFF_EMAIL, "not-the-password")
        assert response.status_code == 200
        assert WRONG_LOGIN_MESSAGE in response.text
        assert session.get("/admin/").url.startswith(session.url("/admin/login/"))

    def test_an_inactive_account_is_refused_with_the_same_message(self, session, staff):
        User.objects.filter(pk=staff.pk).update(is_active=False)
        response = session.login(STAFF_EMAIL, STAFF_PASSWORD)
        assert WRONG_LOGIN_MESSAGE in response.text

    def test_a_post_without_the_csrf_token_is_refused(self, session, staff):
        response = session.http.post(
            session.url("/admin/login/"), data={"username": STAFF_EMAIL, "password": STAFF_PASSWORD}, timeout=30
        )
        assert response.status_code == 403
        assert session.get("/admin/").url.startswith(session.url("/admin/login/"))

    def test_logging_out_ends_the_session(self, session, staff):
        session.login(STAFF_EMAIL, STAFF_PASSWORD)
        response = session.logout()
        assert response.status_code == 200
        assert "Logged out" in response.text
        assert session.get("/admin/").url.startswith(session.url("/admin/login/"))


class TestTheLoginFormSharesTheApiThrottles:
    """Ten failures of an account per minute, over the admin form or /auth/token, lock both."""

    def test_the_eleventh_failure_on_the_form_is_refused_even_with_the_right_password(self, session, staff):
        for _ in range(10):
            assert LOGIN_REFUSED in session.login(STAFF_EMAIL, "wrong-password").text
        response = session.login(STAFF_EMAIL, STAFF_PASSWORD)
        assert re.search(r"Too many failed login attempts\. Try again in \d+ seconds\.", response.text)
        assert session.get("/admin/").url.startswith(session.url("/admin/login/"))

    def test_failures_at_the_api_lock_the_form(self, session, staff):
        for _ in range(10):
            answer = session.http.post(
                session.url("/api/v1/auth/token"), json={"email": STAFF_EMAIL, "password": "wrong"}, timeout=30
            )
            assert answer.status_code == 401
        response = session.login(STAFF_EMAIL, STAFF_PASSWORD)
        assert "Too many failed login attempts." in response.text

    def test_failures_on_the_form_lock_the_api(self, session, staff):
        for _ in range(10):
            session.login(STAFF_EMAIL, "wrong-password")
        answer = session.http.post(
            session.url("/api/v1/auth/token"), json={"email": STAFF_EMAIL, "password": STAFF_PASSWORD}, timeout=30
        )
        assert answer.status_code == 429

    def test_a_right_login_gives_its_attempt_back(self, session, staff):
        for _ in range(9):
            session.login(STAFF_EMAIL, "wrong-password")
        for _ in range(3):
            assert session.login(STAFF_EMAIL, STAFF_PASSWORD).url == session.url("/admin/")
            session.logout()
        assert LOGIN_REFUSED in session.login(STAFF_EMAIL, "wrong-password").text


class TestTenantAdminsConsole:
    """Role admin, active, with a tenant: in; every other refusal reads like a wrong password."""

    @pytest.fixture
    def people(self, transactional_db):
        from tenants.tests.factories import TenantFactory
        from users.models import Role
        from users.tests.factories import DEFAULT_PASSWORD, UserFactory

        tenant = TenantFactory(name="Acme Plant")
        make = lambda role, email, **kw: UserFactory(tenant=tenant, role=role, email=email, **kw)  # noqa: E731
        return {
            "password": DEFAULT_PASSWORD,
            "admin": make(Role.ADMIN, "admin@acme.test"),
            "second_admin": make(Role.ADMIN, "second@acme.test"),
            "operator": make(Role.OPERATOR, "operator@acme.test"),
            "viewer": make(Role.VIEWER, "viewer@acme.test"),
            "inactive_admin": make(Role.ADMIN, "gone@acme.test", is_active=False),
        }

    def test_a_tenant_admin_logs_in_and_sees_their_tenant(self, session, people):
        response = session.login("admin@acme.test", people["password"])
        assert response.url == session.url("/admin/")
        assert "Haltless administration: Acme Plant" in response.text
        assert "API keys" in response.text and "Machines" in response.text
        assert "Tenants" not in response.text and "Groups" not in response.text

    @pytest.mark.parametrize("who", ["operator", "viewer", "inactive_admin"])
    def test_everyone_else_gets_the_wrong_password_message(self, session, people, who):
        right = session.login(people[who].email, people["password"])
        wrong = AdminSession(session.base_url).login("admin@acme.test", "not-the-password")
        assert LOGIN_REFUSED in right.text and LOGIN_REFUSED in wrong.text
        assert session.get("/admin/").url.startswith(session.url("/admin/login/"))

    def test_a_demoted_admin_loses_the_console_at_the_next_request(self, session, people):
        from core.caller import Caller
        from users.services import user_role_change

        session.login("admin@acme.test", people["password"])
        assert session.get("/admin/apikeys/apikey/").status_code == 200
        user_role_change(by=Caller.acting(people["second_admin"]), user=people["admin"], role="operator")
        response = session.get("/admin/apikeys/apikey/")
        assert response.url.startswith(session.url("/admin/login/"))

    def test_a_tenant_admin_cannot_set_another_users_password(self, session, people):
        session.login("admin@acme.test", people["password"])
        operator = people["operator"]
        assert session.get(f"/admin/users/user/{operator.pk}/password/").status_code == 403
        page = session.get(f"/admin/users/user/{operator.pk}/change/").text
        assert "/password/" not in page and "is_staff" not in page and "is_superuser" not in page

    def test_no_staff_flag_is_set_behind_the_scenes(self, session, people):
        session.login("admin@acme.test", people["password"])
        people["admin"].refresh_from_db()
        assert not people["admin"].is_staff and not people["admin"].is_superuser
