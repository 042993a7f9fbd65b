"""Rotation races over HTTP against a live server (PostgreSQL: the row lock is what is tested).

Each request is a real HTTP request from its own thread to pytest-django's live
server, which serves each on its own thread and database connection.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from apikeys import services
from apikeys.tests.factories import ApiKeyFactory
from audit.models import AuditEvent
from users.tokens import token_pair_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WHOAMI = "/api/v1/agent/whoami"


def whoami(live_server, secret: str) -> int:
    return requests.get(live_server.url + WHOAMI, headers={"X-API-Key": secret}, timeout=20).status_code


@pytest.fixture
def both_at_the_lock(monkeypatch):
    """The next two rotations reach the row lock together, so they really race for it."""
    barrier = threading.Barrier(2, timeout=20)
    original = services._locked_live_key

    def synchronised(by, api_key):
        barrier.wait()
        return original(by, api_key)

    monkeypatch.setattr(services, "_locked_live_key", synchronised)


class TestConcurrentRotations:
    @pytest.mark.parametrize("round_", range(3))
    def test_leave_exactly_two_live_secrets_and_one_audit_event_each(
        self, live_server, tenant, admin_user, both_at_the_lock, round_
    ):
        key = ApiKeyFactory(tenant=tenant)
        assert whoami(live_server, key.secret) == 200  # the fleet uses it: rotations keep it as the previous
        access = token_pair_for(admin_user)["access"]
        url = f"{live_server.url}/api/v1/settings/api-keys/{key.id}/rotate"

        def rotate():
            return requests.post(
                url, json={"overlap_seconds": 3600}, headers={"Authorization": f"Bearer {access}"}, timeout=30
            )

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: rotate(), range(2)))
        assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
        secrets = [key.secret, *(a.json()["key"] for a in answers)]
        live = [secret for secret in secrets if whoami(live_server, secret) == 200]
        assert len(live) == 2
        assert key.secret in live  # the secret the fleet still uses survives both
        assert AuditEvent.objects.filter(action="api_key.rotate", target_id=str(key.id)).count() == 2


class TestOldSecretRacingARotation:
    def test_never_a_500(self, live_server, tenant, admin_user):
        key = ApiKeyFactory(tenant=tenant)
        access = token_pair_for(admin_user)["access"]
        url = f"{live_server.url}/api/v1/settings/api-keys/{key.id}/rotate"
        statuses: list[int] = []
        stop = threading.Event()

        def hammer():
            deadline = time.monotonic() + 20
            while not stop.is_set() and time.monotonic() < deadline:
                statuses.append(whoami(live_server, key.secret))

        workers = [threading.Thread(target=hammer) for _ in range(2)]
        for worker in workers:
            worker.start()
        rotations = []
        for overlap in (3600, 0, 3600, 0, 0):
            rotations.append(
                requests.post(
                    url, json={"overlap_seconds": overlap}, headers={"Authorization": f"Bearer {access}"}, timeout=30
                ).status_code
            )
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        assert rotations == [201] * 5
        assert statuses, "no request ran"
        assert set(statuses) <= {200, 401}, sorted(set(statuses))
        assert 500 not in statuses
