"""Logging in to the Django admin through its real login form, over HTTP, against a live server."""

import pytest

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
