"""A dependency down degrades the service, never breaks it (unit level; the fault suite
in core/tests/test_faults.py proves the same against real Redis and PostgreSQL outages)."""

import logging
import socket

import pytest
from django.db import OperationalError

from core import cache as fallback_cache
from core.cache import FallbackRedisCache

DATABASE_UNAVAILABLE = {"detail": "The service cannot reach its database right now; try again shortly."}


def closed_loopback_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


OPTIONS = {"OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}


@pytest.fixture
def unreachable_redis_url() -> str:
    return f"redis://127.0.0.1:{closed_loopback_port()}/0"


@pytest.fixture
def unreachable_redis_cache(unreachable_redis_url):
    return FallbackRedisCache(unreachable_redis_url, OPTIONS)


class TestFallbackRedisCache:
    def test_with_redis_down_it_caches_per_process(self, unreachable_redis_cache):
        cache = unreachable_redis_cache
        cache.set("k", [1, 2], 30)
        assert cache.get("k") == [1, 2]
        assert cache.add("k", "other") is False
        assert cache.add("n", 0) is True
        assert cache.incr("n") == 1
        assert cache.get_many(["k"]) == {"k": [1, 2]}
        assert cache.delete("k") is True
        assert cache.get("k", "gone") == "gone"
        assert cache.redis_is_down

    def test_one_warning_per_interval_not_per_call(self, unreachable_redis_cache, caplog, monkeypatch):
        clock = [1000.0]
        monkeypatch.setattr(fallback_cache.time, "monotonic", lambda: clock[0])
        with caplog.at_level(logging.WARNING, logger="core.cache"):
            for _ in range(50):
                clock[0] += 6  # past the retry pause: Redis is tried (and fails) every time
                unreachable_redis_cache.get("k")
        warnings = [r for r in caplog.records if r.name == "core.cache"]
        # 50 calls over 300 s: one warning a minute.
        assert len(warnings) == 5
        assert warnings[0].getMessage() == (
            "The Redis cache does not answer (ConnectionError); caching per process until it does."
        )

    def test_every_thread_of_a_process_shares_the_stand_in_and_the_outage(
        self, unreachable_redis_url, unreachable_redis_cache
    ):
        # Django makes one cache object per thread; a throttle must still count per process.
        other_thread_cache = FallbackRedisCache(unreachable_redis_url, OPTIONS)
        unreachable_redis_cache.set("k", "v", 30)
        assert other_thread_cache.redis_is_down
        assert other_thread_cache.get("k") == "v"

    def test_after_a_failure_redis_is_left_alone_for_a_moment(self, unreachable_redis_cache, monkeypatch):
        tried = []
        original = FallbackRedisCache.__mro__[1].get

        def counting_get(self, *args, **kwargs):
            tried.append(1)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(FallbackRedisCache.__mro__[1], "get", counting_get)
        for _ in range(20):
            unreachable_redis_cache.get("k")
        assert len(tried) == 1


@pytest.mark.django_db
class TestDatabaseUnavailable:
    @pytest.fixture
    def database_gone(self, monkeypatch):
        from apikeys import selectors

        def fail(**kwargs):
            raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

        monkeypatch.setattr(selectors, "api_key_find_by_secret", fail)

    def test_an_api_request_is_503_json_with_retry_after(self, key_client, database_gone, caplog):
        with caplog.at_level(logging.WARNING, logger="core.middleware"):
            response = key_client.get("/api/v1/machines")
        assert response.status_code == 503
        assert response.json() == DATABASE_UNAVAILABLE
        assert response.headers["Retry-After"] == "5"
        # One line that says what happened, no traceback.
        [record] = [r for r in caplog.records if r.name == "core.middleware"]
        assert record.getMessage().startswith("database unavailable during GET /api/v1/machines: OperationalError")
        assert record.exc_info is None

    def test_other_errors_are_still_a_500(self, key_client, monkeypatch):
        from apikeys import selectors

        def fail(**kwargs):
            raise RuntimeError("a bug")

        monkeypatch.setattr(selectors, "api_key_find_by_secret", fail)
        key_client.raise_request_exception = False
        assert key_client.get("/api/v1/machines").status_code == 500


def test_the_database_settings_bound_connects_and_replace_dead_connections():
    from core.tests.test_settings import run_django

    code = (
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['OPTIONS']['connect_timeout'], d['CONN_HEALTH_CHECKS'])"
    )
    postgres = run_django(
        code, DJANGO_SETTINGS_MODULE="haltless.settings.test", DATABASE_URL="postgres://postgres@127.0.0.1:5432/x"
    )
    assert postgres.stdout.split() == ["3", "True"], postgres.stderr
    sqlite = run_django(
        "from django.conf import settings; o = settings.DATABASES['default']['OPTIONS']; "
        "print(o['transaction_mode'], o['timeout'])",
        DJANGO_SETTINGS_MODULE="haltless.settings.test",
    )
    assert sqlite.stdout.split() == ["IMMEDIATE", "20"], sqlite.stderr


@pytest.mark.django_db
def test_the_drivers_own_error_is_a_503_too(key_client, monkeypatch):
    # Code that talks to the driver directly (a COPY) gets the driver's exception, unwrapped.
    from django.db import connection

    from apikeys import selectors

    def fail(**kwargs):
        raise connection.Database.OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(selectors, "api_key_find_by_secret", fail)
    response = key_client.get("/api/v1/machines")
    assert response.status_code == 503
    assert response.json() == DATABASE_UNAVAILABLE
