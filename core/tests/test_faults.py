"""Faults survived: Redis, the broker, the database and a worker go away; the service degrades.

`make test-faults` (marker `faults`; skipped unless HALTLESS_FAULT_SUITE=1). The
suite runs its own Redis on a free port and its own PostgreSQL cluster (initdb,
pg_ctl on a free port), so it can stop and start them without touching the
shared services, and starts the service under gunicorn on them (settings
`haltless.settings.faults`), plus a real Celery worker for the worker-kill case.
Every check goes through HTTP, as clients meet the service; the database is
inspected directly only to count what was stored.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.tests.faults import OwnPostgres, OwnRedis
from core.tests.live_stack import REPO, ROOT_ADMIN_EMAIL, ROOT_ADMIN_PASSWORD, in_parallel, start_live_stack

pytestmark = pytest.mark.faults

DATABASE = "haltless_faults"
DATABASE_UNAVAILABLE = {"detail": "The service cannot reach its database right now; try again shortly."}
BROKER_UNAVAILABLE = {"detail": "Background jobs cannot be queued right now; nothing was started. Try again shortly."}
# Seeded for the retention run: expired readings (30 days old; the free tier keeps 7)
# and readings inside the window, which must all survive.
EXPIRED_READINGS = 40_000
KEPT_READINGS = 200
WORKERS = 2

_SEED = """
from datetime import timedelta
from django.utils import timezone
from telemetry.models import Sensor, SensorReading
from core.caller import Caller
from telemetry.services import machine_create
from tenants.models import Tenant
tenant = Tenant.objects.get(name="Live Plant")
by = Caller.system(tenant_id=tenant.pk)
machine = machine_create(by=by, external_id="m1", name="Press 1", sensors=[("bearing_temp", "temperature")])
sensor = Sensor.objects.get(machine=machine, key="bearing_temp")
retired = machine_create(by=by, external_id="old", name="Retired", sensors=[("bearing_temp", "temperature")])
old_sensor = Sensor.objects.get(machine=retired, key="bearing_temp")
now = timezone.now()
SensorReading.objects.bulk_create(
    [SensorReading(tenant=tenant, sensor=old_sensor, ts=now - timedelta(days=30, seconds=i), value=1.0)
     for i in range({expired})],
    batch_size=5000,
)
SensorReading.objects.bulk_create(
    [SensorReading(tenant=tenant, sensor=old_sensor, ts=now - timedelta(days=1, seconds=i), value=2.0)
     for i in range({kept})],
)
"""


class FaultStack:
    def __init__(self, folder: Path):
        self.folder = folder
        self.redis = OwnRedis(folder / "redis")
        self.postgres = OwnPostgres(folder / "postgres")
        self.stack = None
        self.worker: subprocess.Popen | None = None
        self.worker_log = folder / "worker.log"

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        return self.postgres.sql(DATABASE, query, params)

    def start_worker(self) -> None:
        log = self.worker_log.open("a")
        self.worker = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "haltless",
                "worker",
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=REPO,
            env=self.stack.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as a whole, like a lost machine
        )

    def kill_worker(self) -> None:
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=20)
        self.worker = None


@pytest.fixture(scope="session")
def faults():
    # Not under pytest's own temporary folder (mode 700): the postgres user must reach it.
    folder = Path(tempfile.mkdtemp(prefix="haltless-faults-"))
    os.chmod(folder, 0o755)
    env = FaultStack(folder)
    stops = []  # what was started, stopped in reverse even when setting up fails half-way
    try:
        env.redis.folder.mkdir()
        env.redis.start()
        stops.append(env.redis.stop)
        env.postgres.initdb()
        env.postgres.start()
        stops.append(env.postgres.stop)
        env.postgres.sql("postgres", f'CREATE DATABASE "{DATABASE}"')
        env.stack, stop_stack = start_live_stack(
            folder,
            workers=WORKERS,
            threads=4,
            race_tenants=0,
            database_url=env.postgres.url(DATABASE),
            extra_env={"DJANGO_SETTINGS_MODULE": "haltless.settings.faults", "CELERY_BROKER_URL": env.redis.url},
        )
        stops.append(stop_stack)
        env.stack.manage("shell", "-c", _SEED.format(expired=EXPIRED_READINGS, kept=KEPT_READINGS))
        token = env.stack.access_token()
        created = env.stack.request(
            "POST",
            "/api/v1/settings/api-keys",
            {"name": "fault suite agent", "scopes": ["ingest", "agent", "read:machines"]},
            {"Authorization": f"Bearer {token}"},
        )
        assert created.status == 201, created
        env.api_key = created.body["key"]
        yield env
    finally:
        if env.worker is not None:
            env.kill_worker()
        for stop in reversed(stops):
            stop()
        shutil.rmtree(folder, ignore_errors=True)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def readings(count: int, *, start: datetime) -> list[dict]:
    return [
        {
            "machine": "m1",
            "sensor": "bearing_temp",
            "ts": (start + timedelta(milliseconds=i)).isoformat(),
            "value": 20.0,
        }
        for i in range(count)
    ]


def stored_between(faults, start: datetime, end: datetime) -> int:
    [(count,)] = faults.sql("SELECT count(*) FROM telemetry_sensorreading WHERE ts >= %s AND ts < %s", (start, end))
    return count


def assert_unavailable(answer, body: dict) -> None:
    assert answer.status == 503, answer
    assert answer.body == body
    assert int(answer.headers["Retry-After"]) > 0


@pytest.fixture
def redis_down(faults):
    faults.redis.stop()
    yield
    faults.redis.start()


class TestRedisDown:
    """Redis holds the cache, rate limits, observed addresses and the broker."""

    def test_logins_profile_password_change_and_the_probe_keep_working(self, faults, redis_down):
        stack = faults.stack
        email, password = f"redis-down-{uuid.uuid4().hex[:8]}@live.test", "first-secret-2026"
        stack.create_user(email=email, password=password, role="admin")
        login = stack.login(email, password)
        assert login.status == 200, login
        token = login.body["access"]
        moved = f"moved-{uuid.uuid4().hex[:8]}@live.test"
        profile = stack.request(
            "PATCH", "/api/v1/settings/profile", {"email": moved, "current_password": password}, bearer(token)
        )
        assert profile.status == 200, profile
        changed = stack.request(
            "POST",
            "/api/v1/settings/change-password",
            {"current_password": password, "new_password": "second-secret-2026"},
            bearer(token),
        )
        assert changed.status == 200, changed
        probe = stack.request("GET", "/api/v1/settings/ai/models", headers=bearer(changed.body["access"]))
        assert probe.status == 200, probe

    def test_telemetry_keeps_working(self, faults, redis_down):
        key = {"X-API-Key": faults.api_key}
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
        assert (
            faults.stack.request("POST", "/api/v1/ingest", {"readings": readings(10, start=start)}, key).status == 202
        )
        assert faults.stack.request("GET", "/api/v1/agent/heartbeat", headers=key).status == 200
        assert faults.stack.request("GET", "/api/v1/machines", headers=key).status == 200

    def test_login_lockouts_still_hold(self, faults, redis_down):
        stack = faults.stack
        stack.reset_throttles()
        email, password = f"locked-{uuid.uuid4().hex[:8]}@live.test", "victim-secret-2026"
        stack.create_user(email=email, password=password)
        answers = in_parallel(20, lambda i: stack.login(email, "wrong-guess-2026", source=f"127.0.9.{i + 2}"))
        assert sorted(answer.status for answer in answers) == [401] * 10 + [429] * 10
        assert stack.login(email, password, source="127.0.9.99").status == 429
        stack.reset_throttles()

    def test_a_retention_run_request_is_503_and_leaves_no_run(self, faults, redis_down):
        before = faults.sql("SELECT count(*) FROM retention_retentionrun")
        answer = faults.stack.request(
            "POST", "/api/v1/settings/admin/retention/run", {}, bearer(faults.stack.access_token())
        )
        assert_unavailable(answer, BROKER_UNAVAILABLE)
        assert faults.sql("SELECT count(*) FROM retention_retentionrun") == before

    def test_readiness_reports_degraded_and_liveness_stays_up(self, faults, redis_down):
        # Load balancers keep the nodes: the service degrades rather than stops.
        ready = faults.stack.request("GET", "/readyz")
        assert ready.status == 200, ready
        assert ready.body["status"] == "degraded"
        assert ready.body["checks"]["database"] == "ok"
        assert ready.body["checks"]["broker"] == "down"
        assert ready.body["checks"]["cache"] == "down"
        assert faults.stack.request("GET", "/healthz").status == 200

    def test_nothing_answers_500_and_the_outage_is_logged_once_per_interval(self, faults, redis_down):
        stack = faults.stack
        log_before = len(stack.server_log())
        token = stack.access_token()
        key = {"X-API-Key": faults.api_key}
        answers = []
        for _ in range(15):
            answers.append(stack.request("GET", "/api/v1/settings/ai/models", headers=bearer(token)))
            answers.append(stack.request("GET", "/api/v1/agent/heartbeat", headers=key))
            answers.append(stack.request("GET", "/api/v1/settings/profile", headers=bearer(token)))
        assert {answer.status for answer in answers} == {200}
        log = stack.server_log()[log_before:]
        # One line per process and interval (a minute), not one per request.
        assert log.count("The Redis cache does not answer") <= WORKERS
        assert log.count("Traceback") == 0


class TestDatabaseDown:
    def test_503_json_within_seconds_then_recovers_by_itself(self, faults):
        stack = faults.stack
        key = {"X-API-Key": faults.api_key}
        token = stack.access_token()
        faults.postgres.stop()
        try:
            for method, path, body, headers in [
                ("GET", "/api/v1/machines", None, key),
                ("GET", "/api/v1/agent/heartbeat", None, key),
                ("GET", "/api/v1/settings/profile", None, bearer(token)),
                ("POST", "/api/v1/auth/token", {"email": ROOT_ADMIN_EMAIL, "password": ROOT_ADMIN_PASSWORD}, None),
            ]:
                started = time.monotonic()
                answer = stack.request(method, path, body, headers, timeout=20)
                assert time.monotonic() - started < 5, f"{path} took too long"
                assert_unavailable(answer, DATABASE_UNAVAILABLE)
            assert stack.request("GET", "/readyz").status == 503
            assert stack.request("GET", "/healthz").status == 200
        finally:
            faults.postgres.start()
        deadline = time.monotonic() + 30
        while stack.request("GET", "/api/v1/machines", headers=key).status != 200:
            assert time.monotonic() < deadline, "the service did not recover"
            time.sleep(0.5)
        # Every process recovers: several requests in a row all succeed.
        assert {stack.request("GET", "/api/v1/machines", headers=key).status for _ in range(10)} == {200}
        assert stack.request("GET", "/readyz").status == 200
        # (readyz logs its own failed database check with a traceback, on purpose: not ours to count.)


class TestIngestInterrupted:
    def test_a_batch_cut_off_mid_insert_is_stored_whole_or_not_at_all_and_its_resend_once(self, faults):
        stack = faults.stack
        key = {"X-API-Key": faults.api_key}
        # Inside the retention window (two days old), so the retention run below leaves them.
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        import psycopg

        log_before = len(stack.server_log())
        killer = psycopg.connect(faults.postgres.url(DATABASE), autocommit=True)
        for attempt in range(40):
            start = base + timedelta(hours=attempt)
            end = start + timedelta(hours=1)
            batch = readings(5000, start=start)
            answers = []
            sender = threading.Thread(
                target=lambda: answers.append(stack.request("POST", "/api/v1/ingest", {"readings": batch}, key))
            )
            sender.start()
            killed = []
            # The service's connection while it is inside the batch's transaction and has
            # written to (or is writing to) the readings table: COPY, or the staged INSERT.
            while sender.is_alive() and not killed:
                killed = killer.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
                    "AND state <> 'idle' AND query ILIKE %s",
                    (DATABASE, "%telemetry_sensorreading%"),
                ).fetchall()
            sender.join(30)
            [answer] = answers
            if answer.status == 202:
                assert stored_between(faults, start, end) == 5000
                continue
            # Cut off: told to retry, and nothing of the batch is half-stored.
            assert_unavailable(answer, DATABASE_UNAVAILABLE)
            assert stored_between(faults, start, end) in (0, 5000)
            resend = stack.request("POST", "/api/v1/ingest", {"readings": batch}, key)
            assert resend.status == 202, resend
            assert stored_between(faults, start, end) == 5000
            break
        else:
            killer.close()
            pytest.fail("no ingest was caught mid-insert in 40 tries")
        killer.close()
        print(json.dumps({"cut_off_on_try": attempt + 1}))
        assert "Traceback" not in stack.server_log()[log_before:]


class TestWorkerKilled:
    def test_a_run_killed_mid_way_is_redelivered_and_finishes(self, faults):
        stack = faults.stack
        faults.start_worker()
        answer = stack.request("POST", "/api/v1/settings/admin/retention/run", {}, bearer(stack.access_token()))
        assert answer.status == 202, answer
        run_id = answer.body["run_id"]

        def run_row():
            [row] = faults.sql(
                "SELECT status, readings_deleted, attempts FROM retention_retentionrun WHERE id = %s", (run_id,)
            )
            return row

        deadline = time.monotonic() + 60
        while not ((row := run_row())[0] == "running" and row[1] > 0):
            assert time.monotonic() < deadline, f"the run did not start: {row}"
            time.sleep(0.02)
        faults.kill_worker()
        status, deleted_at_kill, _ = run_row()
        assert status == "running" and 0 < deleted_at_kill < EXPIRED_READINGS, run_row()

        faults.start_worker()
        deadline = time.monotonic() + 90
        while (row := run_row())[0] != "succeeded":
            assert row[0] == "running", row
            assert time.monotonic() < deadline, f"the run was not finished after the restart: {row}"
            time.sleep(0.25)
        status, deleted, attempts = run_row()
        assert deleted == EXPIRED_READINGS
        assert attempts >= 2
        [(expired_left, kept_left)] = faults.sql(
            "SELECT count(*) FILTER (WHERE ts < now() - interval '7 days'), "
            "count(*) FILTER (WHERE ts >= now() - interval '7 days' AND value = 2.0) "
            "FROM telemetry_sensorreading"
        )
        assert (expired_left, kept_left) == (0, KEPT_READINGS)
        # The run's history, as the tenant's admin reads it.
        history = stack.request(
            "GET", f"/api/v1/settings/admin/retention/runs/{run_id}", headers=bearer(stack.access_token())
        )
        assert history.status == 200, history
        assert history.body["status"] == "succeeded"
        assert history.body["readings_deleted"] == EXPIRED_READINGS
        print(json.dumps({"killed_after": deleted_at_kill, "attempts": attempts}))
