"""The admin in a real browser (headless Chromium) against a live server, as staff use it."""

import pytest

from core.tests.live_admin import WRONG_LOGIN_MESSAGE
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
