"""Throttles and the last-admin rule under real concurrency, through the front door.

Every request here goes over HTTP to the service under gunicorn (several
processes and threads, a database of its own: see core/tests/live_stack.py),
from threads released together by a barrier. Clients that must look like many
machines send from different loopback addresses (127.0.0.x), which the server
sees as REMOTE_ADDR, the only client address it trusts.
"""

import itertools
import uuid

import pytest

from core.tests.live_stack import ROOT_ADMIN_PASSWORD, in_parallel, race_admin_email

pytestmark = pytest.mark.live

LOGIN_ACCOUNT_LIMIT = 10  # failed logins per account per minute
LOGIN_ADDRESS_LIMIT = 30  # failed logins per client address per minute
CURRENT_PASSWORD_LIMIT = 10  # wrong current passwords per user per hour
WRONG = "not-the-password-1"
BAD_CREDENTIALS = {"detail": "No active account found with the given credentials."}
THROTTLED_PREFIX = "Request was throttled. Expected available in "

_addresses = itertools.count(2)


def new_address() -> str:
    """A loopback address no other test of this run has sent from."""
    n = next(_addresses)
    return f"127.0.{n // 250}.{n % 250 + 2}"


def unique_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@live.test"


@pytest.fixture
def stack(live_stack):
    live_stack.reset_throttles()
    yield live_stack
    live_stack.reset_throttles()


@pytest.fixture
def victim(stack) -> dict:
    email = unique_email("victim")
    password = "Harbour-lantern-93"  # nothing like the generated email: the similarity rule cannot refuse it
    stack.create_user(email=email, password=password)
    return {"email": email, "password": password}


def statuses(answers) -> list[int]:
    return [answer.status for answer in answers]


def assert_throttled(answer) -> None:
    assert answer.status == 429, answer
    assert answer.body["detail"].startswith(THROTTLED_PREFIX), answer
    assert int(answer.headers["Retry-After"]) >= 1


class TestLoginThrottleOverHttp:
    def test_forged_forwarded_for_does_not_dodge_the_address_limit(self, stack):
        # One machine, 35 failed logins at different accounts, each claiming another address.
        source = new_address()
        answers = [
            stack.login(unique_email("probe"), WRONG, headers={"X-Forwarded-For": f"203.0.113.{i}"}, source=source)
            for i in range(35)
        ]
        assert statuses(answers[:LOGIN_ADDRESS_LIMIT]) == [401] * LOGIN_ADDRESS_LIMIT
        for answer in answers[LOGIN_ADDRESS_LIMIT:]:
            assert_throttled(answer)

    def test_parallel_wrong_passwords_never_pass_the_account_limit(self, stack, victim):
        # 3 rounds of 20 wrong passwords at once, each from its own address, so only
        # the account's limit stands between them and the password check.
        answers = []
        for _ in range(3):
            sources = [new_address() for _ in range(20)]
            answers += in_parallel(
                20, lambda i, sources=sources: stack.login(victim["email"], WRONG, source=sources[i])
            )
        assert sorted(set(statuses(answers))) == [401, 429], statuses(answers)
        assert statuses(answers).count(401) == LOGIN_ACCOUNT_LIMIT
        for answer in answers:
            if answer.status == 401:
                assert answer.body == BAD_CREDENTIALS
            else:
                assert_throttled(answer)
        # Locked: even the right password waits.
        assert_throttled(stack.login(victim["email"], victim["password"], source=new_address()))

    def test_a_flood_of_other_failed_logins_does_not_lift_a_lockout(self, stack, victim):
        attacker = new_address()
        answers = [stack.login(victim["email"], WRONG, source=attacker) for _ in range(LOGIN_ACCOUNT_LIMIT)]
        assert statuses(answers) == [401] * LOGIN_ACCOUNT_LIMIT
        assert_throttled(stack.login(victim["email"], victim["password"], source=new_address()))
        # 180 failed logins at other accounts, from 180 addresses (and forged headers),
        # more than an in-process cache holds.
        flood_sources = [new_address() for _ in range(180)]

        def flood(i: int):
            return stack.login(
                unique_email("flood"),
                WRONG,
                headers={"X-Forwarded-For": f"198.51.100.{i % 250}"},
                source=flood_sources[i],
            )

        flooded = [answer for batch in range(6) for answer in in_parallel(30, lambda i, b=batch: flood(b * 30 + i))]
        assert statuses(flooded) == [401] * 180
        assert_throttled(stack.login(victim["email"], victim["password"], source=new_address()))

    def test_a_correct_login_is_not_counted(self, stack, victim):
        source = new_address()
        for _ in range(LOGIN_ACCOUNT_LIMIT + 5):
            assert stack.login(victim["email"], victim["password"], source=source).status == 200


def current_password_request(stack, endpoint: str, token: str, current_password: str, source: str):
    headers = {"Authorization": f"Bearer {token}"}
    if endpoint == "profile":
        body = {"email": unique_email("moved"), "current_password": current_password}
        return stack.request("PATCH", "/api/v1/settings/profile", body, headers, source=source)
    body = {"current_password": current_password, "new_password": "a-brand-new-secret-2026"}
    return stack.request("POST", "/api/v1/settings/change-password", body, headers, source=source)


class TestCurrentPasswordThrottleOverHttp:
    @pytest.mark.parametrize("endpoint", ["profile", "change-password"])
    def test_parallel_wrong_current_passwords_never_pass_the_limit(self, stack, victim, endpoint):
        # A stolen access token must not become a password-guessing machine.
        token = stack.access_token(victim["email"], victim["password"])
        answers = []
        for _ in range(2):
            answers += in_parallel(
                20, lambda i: current_password_request(stack, endpoint, token, WRONG, source=new_address())
            )
        assert sorted(set(statuses(answers))) == [400, 429], statuses(answers)
        assert statuses(answers).count(400) == CURRENT_PASSWORD_LIMIT
        for answer in answers:
            if answer.status == 429:
                assert_throttled(answer)
        assert_throttled(current_password_request(stack, endpoint, token, victim["password"], new_address()))


def race_pair(stack, index: int) -> tuple[str, str, dict, dict]:
    """The two admins of race tenant `index`: their tokens and user objects."""
    tokens = [stack.access_token(race_admin_email(index, side), ROOT_ADMIN_PASSWORD) for side in "ab"]
    me = [stack.request("GET", "/api/v1/settings/profile", headers={"Authorization": f"Bearer {t}"}) for t in tokens]
    return tokens[0], tokens[1], me[0].body, me[1].body


def active_admins(stack, token: str) -> int:
    answer = stack.request("GET", "/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 200, answer
    users = answer.body["results"] if isinstance(answer.body, dict) else answer.body
    return sum(1 for user in users if user["role"] == "admin" and user["is_active"])


class TestLastAdminOverHttp:
    """Two admins of a tenant with no third remove each other at the same moment:
    one wins, the other is refused with a rule's 4xx, never a 500 ("database is
    locked" on SQLite), and one active admin is left."""

    @pytest.mark.parametrize(
        ("index", "action"),
        [(i, "demote") for i in range(6)] + [(i, "deactivate") for i in range(6, 12)],
    )
    def test_two_admins_removing_each_other_at_once(self, stack, index, action):
        token_a, token_b, user_a, user_b = race_pair(stack, index)

        def remove(i: int):
            token, target = (token_a, user_b) if i == 0 else (token_b, user_a)
            headers = {"Authorization": f"Bearer {token}"}
            if action == "demote":
                return stack.request("PUT", f"/api/v1/users/{target['id']}/role", {"role": "operator"}, headers)
            return stack.request("DELETE", f"/api/v1/users/{target['id']}", None, headers)

        answers = in_parallel(2, remove)
        success = 200 if action == "demote" else 204
        # The loser is refused by the rule (400), or found it had already lost its role (403) or
        # its account (401) when its request was read.
        assert sorted(statuses(answers)) in ([success, 400], [success, 403], sorted([success, 401])), answers
        winner = token_a if answers[0].status == success else token_b
        assert active_admins(stack, winner) == 1
        assert "database is locked" not in stack.server_log()
