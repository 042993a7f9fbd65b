"""Rate limits and observed addresses on a real Redis, shared by processes; and what happens when it is down.

The Redis is HALTLESS_TEST_REDIS_URL (default CI's db 15); tests skip when it
does not answer. Keys are per API-key id, so nothing here clears the database.
"""

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection

from apikeys import ratelimit, redis_store
from apikeys.models import ApiKey
from haltless.testing import client_for_key

REDIS_URL = os.environ.get("HALTLESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
HEARTBEAT = "/api/v1/agent/heartbeat"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _redis_answers() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not _redis_answers(), reason=f"needs Redis at {REDIS_URL}")


@pytest.fixture
def on_redis(settings):
    settings.HALTLESS_REDIS_URL = REDIS_URL
    redis_store.reset()
    yield
    redis_store.reset()


def _limited(make_api_key, requests_per_minute=3):
    issued = make_api_key(scopes=["ingest", "agent"], name="limited")
    ApiKey.objects.filter(pk=issued.api_key.pk).update(requests_per_minute=requests_per_minute)
    return issued


@needs_redis
class TestOnRedis:
    def test_counts_in_redis_not_in_the_process(self, on_redis, make_api_key):
        issued = _limited(make_api_key)
        client = client_for_key(issued.secret)
        assert [client.get(HEARTBEAT).status_code for _ in range(4)] == [200, 200, 200, 429]
        # The process's own window saw nothing: another process would see the same count.
        assert ratelimit.local_window._windows == {}
        # A second "process" (a fresh client state) is refused as well.
        ratelimit.local_window.clear()
        redis_store.reset()
        response = client.get(HEARTBEAT)
        assert response.status_code == 429
        assert response.json() == {"detail": "API key rate limit exceeded: 3 requests per minute."}

    def test_observed_addresses_go_through_redis_and_are_flushed_on_read(self, on_redis, make_api_key, admin_client):
        from apikeys import observed

        issued = make_api_key()
        client = client_for_key(issued.secret)
        for address in ["10.1.1.1", "10.1.1.1", "2001:db8::1"]:
            client.get(HEARTBEAT, REMOTE_ADDR=address)
        assert observed.local_buffer.uses == {}
        body = admin_client.get(f"/api/v1/settings/api-keys/{issued.api_key.pk}/observed-ips").json()
        assert {item["ip"]: item["requests"] for item in body} == {"10.1.1.1": 2, "2001:db8::/64": 1}
        # Taken out of Redis into the database: a second read counts nothing twice.
        body = admin_client.get(f"/api/v1/settings/api-keys/{issued.api_key.pk}/observed-ips").json()
        assert {item["ip"]: item["requests"] for item in body} == {"10.1.1.1": 2, "2001:db8::/64": 1}


class TestRedisDown:
    @pytest.fixture
    def redis_down(self, settings):
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings.HALTLESS_REDIS_URL = f"redis://127.0.0.1:{port}/0"
        redis_store.reset()
        yield
        redis_store.reset()

    def test_each_process_enforces_the_limit_alone_and_nothing_answers_500(self, redis_down, make_api_key, caplog):
        issued = _limited(make_api_key)
        client = client_for_key(issued.secret)
        with caplog.at_level("WARNING", logger="apikeys.redis_store"):
            statuses = [client.get(HEARTBEAT).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        warnings = [r for r in caplog.records if r.name == "apikeys.redis_store"]
        assert len(warnings) == 1  # once per interval, not per request
        assert "does not answer" in warnings[0].getMessage()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


GUNICORN_WORKERS = 3


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    port = _free_port()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "haltless.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": REDIS_URL,
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "haltless.wsgi:application",
            f"--workers={GUNICORN_WORKERS}",
            f"--bind=127.0.0.1:{port}",
            "--log-level=warning",
            # One access-log line per request naming the worker's pid: which workers served.
            "--access-logfile=-",
            "--access-logformat=%(p)s %({x-probe}i)s %(s)s",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"gunicorn did not start: {process.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.2)

    def stop() -> str:
        process.terminate()
        try:
            out, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        return out.decode()

    yield url, stop
    if process.poll() is None:
        stop()


@needs_redis
@pytest.mark.postgres
class TestParallelRequestsAcrossGunicornWorkers:
    """50 parallel requests against a 10-per-minute key, 3 gunicorn workers sharing Redis: exactly 10 pass."""

    REQUESTS = 50
    LIMIT = 10

    def test_the_allowlist_over_http_and_a_spoofed_forwarded_for(self, server, transactional_db, make_api_key):
        url, _ = server
        issued = make_api_key(name="fenced")
        ApiKey.objects.filter(pk=issued.api_key.pk).update(allowed_cidrs=["127.0.0.7/32"])

        def heartbeat(source: str, forwarded: str | None = None) -> tuple[int, bytes]:
            import http.client

            port = int(url.rsplit(":", 1)[1])
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
            headers = {"X-API-Key": issued.secret, **({"X-Forwarded-For": forwarded} if forwarded else {})}
            try:
                connection.request("GET", HEARTBEAT, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            finally:
                connection.close()

        assert heartbeat("127.0.0.7")[0] == 200
        assert heartbeat("127.0.0.8") == (403, b'{"detail":"API key is not allowed from 127.0.0.8."}')
        assert heartbeat("127.0.0.8", forwarded="127.0.0.7") == (
            403,
            b'{"detail":"API key is not allowed from 127.0.0.8."}',
        )

    def test_exactly_the_limit_gets_through(self, server, transactional_db, make_api_key):
        server, stop = server
        issued = _limited(make_api_key, requests_per_minute=self.LIMIT)
        start = threading.Barrier(self.REQUESTS)

        def call(_):
            request = urllib.request.Request(
                f"{server}{HEARTBEAT}", headers={"X-API-Key": issued.secret, "X-Probe": "parallel"}
            )
            start.wait()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, dict(response.headers)
            except urllib.error.HTTPError as exc:
                return exc.code, dict(exc.headers)

        with ThreadPoolExecutor(self.REQUESTS) as pool:
            answers = list(pool.map(call, range(self.REQUESTS)))
        statuses = sorted(status for status, _ in answers)
        print(f"parallel: {statuses.count(200)} x 200, {statuses.count(429)} x 429 of {self.REQUESTS}")
        assert statuses.count(200) == self.LIMIT
        assert statuses.count(429) == self.REQUESTS - self.LIMIT
        for status, headers in answers:
            assert headers["RateLimit-Limit"] == str(self.LIMIT)
            if status == 429:
                assert headers["RateLimit-Remaining"] == "0"
                assert 1 <= int(headers["Retry-After"]) <= 60
        remaining = sorted(int(headers["RateLimit-Remaining"]) for status, headers in answers if status == 200)
        assert remaining == list(range(self.LIMIT))  # each slot given exactly once: no lost update
        served_by = {line.split()[0] for line in stop().splitlines() if " parallel " in line}
        print(f"parallel: answered by {len(served_by)} gunicorn workers")
        assert len(served_by) >= 2  # the count was shared, not one worker's own


@needs_redis
def test_the_periodic_job_moves_every_pending_key_into_the_database(on_redis, make_api_key):
    from apikeys.models import ObservedIp
    from apikeys.tasks import flush_observed_ips

    first, second = make_api_key(name="a"), make_api_key(name="b")
    client_for_key(first.secret).get(HEARTBEAT, REMOTE_ADDR="10.3.3.3")
    client_for_key(second.secret).get(HEARTBEAT, REMOTE_ADDR="10.4.4.4")
    assert not ObservedIp.objects.exists()
    assert flush_observed_ips() >= 2
    assert set(ObservedIp.objects.values_list("network", "requests")) == {("10.3.3.3", 1), ("10.4.4.4", 1)}
