"""The last-admin rule holds when two admins remove each other at the same moment.

Each request runs in its own thread, through the whole HTTP stack, on its own
database connection. A barrier holds both requests just before the service
takes its locks, so both have passed the admin check and really do race for
the rows; without the lock both would see two admins and both would succeed.
"""

import json
import threading

import pytest
from django.db import connection
from django.test import Client

from users import services
from users.models import Role, User
from users.tests.factories import UserFactory
from users.tests.helpers import role_url, user_url
from users.tokens import token_pair_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 3


@pytest.fixture
def both_at_the_lock(monkeypatch):
    """Make the next two calls of the locking step start together."""
    barrier = threading.Barrier(2, timeout=20)
    original = services._lock_for_admin_change

    def synchronised(**kwargs):
        barrier.wait()
        return original(**kwargs)

    monkeypatch.setattr(services, "_lock_for_admin_change", synchronised)
    return barrier


def request_in_thread(results: dict, name: str, access: str, method: str, url: str, body: dict | None) -> None:
    try:
        client = Client(HTTP_AUTHORIZATION=f"Bearer {access}")
        if body is None:
            response = getattr(client, method)(url)
        else:
            response = getattr(client, method)(url, data=json.dumps(body), content_type="application/json")
        results[name] = (response.status_code, response.json() if response.content else None)
    except Exception as exc:  # a crash must fail the test, not vanish with the thread
        results[name] = ("error", repr(exc))
    finally:
        connection.close()


def race(first: tuple, second: tuple) -> dict:
    results: dict = {}
    threads = [
        threading.Thread(target=request_in_thread, args=(results, "first", *first)),
        threading.Thread(target=request_in_thread, args=(results, "second", *second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def two_admins(tenant) -> tuple[User, User]:
    return (
        UserFactory(tenant=tenant, role=Role.ADMIN),
        UserFactory(tenant=tenant, role=Role.ADMIN),
    )


def active_admins(tenant) -> int:
    return User.objects.filter(tenant=tenant, role=Role.ADMIN, is_active=True).count()


def assert_exactly_one_succeeded(results: dict, success_status: int) -> None:
    statuses = sorted(status for status, _ in results.values())
    assert statuses.count(success_status) == 1, results
    loser = next(body for status, body in results.values() if status != success_status)
    # The loser is refused either by the last-admin rule (400) or because it lost its own admin role (403).
    assert next(status for status, _ in results.values() if status != success_status) in (400, 403), results
    assert set(loser) == {"detail"}


class TestLastAdminUnderConcurrency:
    @pytest.mark.parametrize("round_number", range(ROUNDS))
    def test_two_admins_demoting_each_other(self, tenant, both_at_the_lock, round_number):
        a, b = two_admins(tenant)
        results = race(
            (token_pair_for(a)["access"], "put", role_url(b), {"role": "operator"}),
            (token_pair_for(b)["access"], "put", role_url(a), {"role": "operator"}),
        )
        assert_exactly_one_succeeded(results, 200)
        assert active_admins(tenant) == 1

    @pytest.mark.parametrize("round_number", range(ROUNDS))
    def test_two_admins_deactivating_each_other(self, tenant, both_at_the_lock, round_number):
        a, b = two_admins(tenant)
        results = race(
            (token_pair_for(a)["access"], "delete", user_url(b), None),
            (token_pair_for(b)["access"], "delete", user_url(a), None),
        )
        assert_exactly_one_succeeded(results, 204)
        assert active_admins(tenant) == 1

    def test_one_demotes_while_the_other_deactivates(self, tenant, both_at_the_lock):
        a, b = two_admins(tenant)
        results = race(
            (token_pair_for(a)["access"], "put", role_url(b), {"role": "viewer"}),
            (token_pair_for(b)["access"], "delete", user_url(a), None),
        )
        statuses = sorted(status for status, _ in results.values())
        assert statuses in ([200, 400], [200, 403], [204, 400], [204, 403]), results
        assert active_admins(tenant) == 1

    def test_with_a_third_admin_both_succeed(self, tenant, both_at_the_lock):
        a, b = two_admins(tenant)
        UserFactory(tenant=tenant, role=Role.ADMIN)
        results = race(
            (
                token_pair_for(a)["access"],
                "put",
                role_url(UserFactory(tenant=tenant, role=Role.ADMIN)),
                {"role": "viewer"},
            ),
            (
                token_pair_for(b)["access"],
                "put",
                role_url(UserFactory(tenant=tenant, role=Role.ADMIN)),
                {"role": "viewer"},
            ),
        )
        assert sorted(status for status, _ in results.values()) == [200, 200], results
        assert active_admins(tenant) == 3
