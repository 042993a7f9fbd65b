"""The login throttle API every login path uses (the API login and the admin's login form)."""

import time

import pytest

from core.caller import Caller
from core.models import ThrottleCounter
from users.throttles import (
    LoginThrottled,
    current_password_attempt_begin,
    current_password_attempt_succeeded,
    login_attempt_begin,
    login_attempt_check,
    login_attempt_succeeded,
)

pytestmark = pytest.mark.django_db


def from_address(ip: str | None) -> Caller:
    """An anonymous caller (a login form) at `ip`."""
    return Caller.system(tenant_id=None, client_ip=ip)


def fail(times: int, *, email="jane@acme.test", ip: str | None = "192.0.2.1") -> None:
    for _ in range(times):
        login_attempt_begin(email=email, by=from_address(ip))


class TestLoginAttempts:
    def test_the_eleventh_failure_of_an_account_is_refused(self):
        fail(10, email="jane@acme.test", ip=None)
        with pytest.raises(LoginThrottled) as refused:
            login_attempt_begin(email="JANE@acme.test ", by=from_address("192.0.2.99"))
        assert 1 <= refused.value.wait_seconds <= 60

    def test_the_thirty_first_failure_of_an_address_is_refused(self):
        for i in range(30):
            login_attempt_begin(email=f"user{i}@acme.test", by=from_address("192.0.2.1"))
        with pytest.raises(LoginThrottled):
            login_attempt_begin(email="someone-else@acme.test", by=from_address("192.0.2.1"))
        login_attempt_begin(email="someone-else@acme.test", by=from_address("192.0.2.2"))

    def test_a_success_gives_the_attempt_back(self):
        for _ in range(20):
            login_attempt_succeeded(login_attempt_begin(email="jane@acme.test", by=from_address("192.0.2.1")))
        fail(10)
        with pytest.raises(LoginThrottled):
            login_attempt_begin(email="jane@acme.test", by=from_address("192.0.2.1"))

    def test_a_refused_attempt_costs_nothing(self):
        fail(10)
        for _ in range(5):
            with pytest.raises(LoginThrottled):
                login_attempt_begin(email="jane@acme.test", by=from_address("192.0.2.1"))
        # The address spent 10 of its 30, not 15.
        for i in range(20):
            login_attempt_begin(email=f"other{i}@acme.test", by=from_address("192.0.2.1"))

    def test_check_reads_without_counting(self):
        assert login_attempt_check(email="jane@acme.test", by=from_address("192.0.2.1")) is None
        fail(9)
        for _ in range(5):
            assert login_attempt_check(email="jane@acme.test", by=from_address("192.0.2.1")) is None
        fail(1)
        assert 1 <= login_attempt_check(email="jane@acme.test", by=from_address("192.0.2.1")) <= 60

    def test_check_sees_a_locked_out_address_for_any_account(self):
        for i in range(30):
            login_attempt_begin(email=f"user{i}@acme.test", by=from_address("192.0.2.1"))
        assert 1 <= login_attempt_check(email="never-tried@acme.test", by=from_address("192.0.2.1")) <= 60
        assert 1 <= login_attempt_check(email=None, by=from_address("192.0.2.1")) <= 60
        assert login_attempt_check(email="never-tried@acme.test", by=from_address("192.0.2.2")) is None

    def test_check_reads_only_its_own_counters(self):
        fail(10, email="someone-else@acme.test", ip="192.0.2.7")  # another account is locked out
        assert login_attempt_check(email="someone-else@acme.test", by=from_address("192.0.2.1")) is not None
        assert login_attempt_check(email="jane@acme.test", by=from_address("192.0.2.1")) is None

    def test_check_ignores_a_window_that_has_ended(self):
        fail(10)
        ThrottleCounter.objects.update(window_ends_at=time.time() - 1)
        assert login_attempt_check(email="jane@acme.test", by=from_address("192.0.2.1")) is None
        login_attempt_begin(email="jane@acme.test", by=from_address("192.0.2.1"))  # and begin agrees: a new window

    @pytest.mark.parametrize(("left", "wait"), [(30.5, 31), (30.0, 30), (29.25, 30), (0.2, 1), (0.0005, 1)])
    def test_check_rounds_the_lockout_left_up_to_whole_seconds(self, monkeypatch, left, wait):
        fail(10)
        now = 1_800_000_000.0
        ThrottleCounter.objects.update(window_ends_at=now + left)
        monkeypatch.setattr("users.throttles.time.time", lambda: now)
        assert login_attempt_check(email="jane@acme.test", by=from_address("192.0.2.1")) == wait

    def test_limits_come_from_the_settings(self, settings):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"login_ip": "100/min", "login_account": "2/min"},
        }
        fail(2)
        with pytest.raises(LoginThrottled):
            login_attempt_begin(email="jane@acme.test", by=from_address("192.0.2.1"))


class TestCurrentPasswordAttempts:
    def test_ten_an_hour_per_user(self):
        for _ in range(10):
            current_password_attempt_begin(user_id="u1")
        with pytest.raises(LoginThrottled) as refused:
            current_password_attempt_begin(user_id="u1")
        assert refused.value.wait_seconds > 60
        current_password_attempt_begin(user_id="u2")

    def test_a_right_password_gives_the_check_back(self):
        for _ in range(15):
            current_password_attempt_succeeded(current_password_attempt_begin(user_id="u1"))
