"""The real thing: gunicorn with 2 workers, its access log and its /metrics, on 127.0.0.1.

One gunicorn (2 sync workers, JSON logs, the repository's gunicorn.conf.py,
a migrated SQLite file of its own) gets known traffic, some of it in parallel
so both workers serve; /metrics must then show exactly that traffic, summed
over both workers, and still after one worker is killed and replaced. Every
line it wrote (app log, gunicorn's log, access log) must parse as JSON and
hold no secret, though keys, a JWT and a password went in query strings and
headers. A second, plain-format gunicorn logs the request headers themselves
in its access log, to show the redaction there too.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.live

REPO_ROOT = Path(django_settings.BASE_DIR)
HOST = "127.0.0.1"
TOKEN = "live-scrape-token-0123456789abcdef"
STARTUP_SECONDS = 60

# Makes a tenant, a machine with one sensor, an edge-agent key and an admin; prints the secrets as JSON.
SETUP_SCRIPT = """
import json
from apikeys.services import api_key_create
from core.caller import Caller
from telemetry.models import Machine, Sensor
from tenants.services import tenant_create
from users.models import Role, User
tenant = tenant_create(name="Live plant")
machine = Machine.objects.create(tenant=tenant, external_id="m1", name="Press 1")
Sensor.objects.create(machine=machine, key="temp", kind=Sensor.Kind.TEMPERATURE)
key = api_key_create(by=Caller.system(tenant_id=tenant.id), name="agent", scopes_requested="edge_agent")
other = api_key_create(by=Caller.system(tenant_id=tenant.id), name="second", scopes_requested="edge_agent")
user = User(tenant=tenant, email="admin@live.test", role=Role.ADMIN, full_name="Admin")
user.set_password("Live-Password-2031!")
user.save()
print(json.dumps({"key": key.secret, "prefix": key.api_key.prefix, "other_key": other.secret}))
"""
PASSWORD = "Live-Password-2031!"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def request(base: str, method: str, path: str, *, headers=None, body=None) -> tuple[int, bytes, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@pytest.fixture(scope="module")
def live_env(tmp_path_factory) -> dict:
    """The environment of a production-like process on a migrated SQLite file of its own, and its secrets."""
    workdir = tmp_path_factory.mktemp("live")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PROMETHEUS_", "CELERY_"))},
        "DJANGO_SETTINGS_MODULE": "haltless.settings.test",
        "DATABASE_URL": f"sqlite:///{workdir / 'live.sqlite3'}",
        "METRICS_TOKEN": TOKEN,
        "DJANGO_ALLOWED_HOSTS": HOST,
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=REPO_ROOT, env=env, check=True, timeout=300)
    out = subprocess.run(
        [*manage, "shell", "-c", SETUP_SCRIPT], cwd=REPO_ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    return {"env": env, "workdir": workdir, **json.loads(out.strip().splitlines()[-1])}


@contextmanager
def gunicorn(live_env: dict, name: str, *, workers: int, log_format: str, extra: list[str] = ()) -> Iterator[dict]:
    workdir: Path = live_env["workdir"]
    metrics_dir = workdir / f"metrics-{name}"
    port = free_port()
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    env = {**live_env["env"], "DJANGO_LOG_FORMAT": log_format, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    command = [sys.executable, "-m", "gunicorn", "haltless.wsgi:application", f"--bind={HOST}:{port}"]
    command += [f"--workers={workers}", "--access-logfile=-", "--timeout=60", *extra]
    with out_path.open("w") as out, err_path.open("w") as err:
        server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=err)
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert server.poll() is None, f"gunicorn exited:\n{err_path.read_text()}"
            try:
                if request(base, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"gunicorn did not get ready:\n{err_path.read_text()}"
            time.sleep(0.2)
        yield {"base": base, "server": server, "out": out_path, "err": err_path, "metrics_dir": metrics_dir}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def scrape(base: str) -> dict[tuple[str, frozenset], float]:
    status, body, _ = request(base, "GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def worker_pids(metrics_dir: Path) -> set[int]:
    return {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("counter_*.db")}


def reading(minute: int) -> dict:
    return {"machine": "m1", "sensor": "temp", "ts": f"2026-03-01T12:{minute:02d}:00+00:00", "value": 20.5}


class TestLiveGunicorn:
    def test_metrics_count_exactly_across_two_workers_and_logs_are_json_without_secrets(self, live_env):
        key, other_key = live_env["key"], live_env["other_key"]
        with gunicorn(live_env, "json", workers=2, log_format="json") as live:
            base = live["base"]
            bad_key = "hlts_" + "0" * 38
            calls = (
                [("GET", "/healthz", {}, None, 200)] * 12
                + [("GET", "/api/v1/agent/heartbeat", {"X-API-Key": key}, None, 200)] * 10
                + [("GET", "/api/v1/agent/heartbeat", {"Authorization": f"Bearer {bad_key}"}, None, 401)] * 4
                + [
                    (
                        "POST",
                        "/api/v1/ingest",
                        {"X-API-Key": key},
                        {"readings": [reading(b * 4 + i) for i in range(4)]},
                        202,
                    )
                    for b in range(3)
                ]
                + [
                    (
                        "POST",
                        "/api/v1/ingest",
                        {"X-API-Key": key},
                        {"readings": [reading(50), {"machine": "nope"}]},
                        400,
                    )
                ]
                + [("GET", "/metrics", {"Authorization": "Bearer wrong"}, None, 404)]
            )
            # In parallel, so that both sync workers must take some of them.
            with ThreadPoolExecutor(max_workers=6) as pool:
                results = list(pool.map(lambda c: request(base, c[0], c[1], headers=c[2], body=c[3]), calls))
            assert [r[0] for r in results] == [c[4] for c in calls]
            assert all(len(r[2]["X-Request-ID"]) == 32 for r in results)

            # Secrets where a careless log would pick them up: query string and headers.
            status, body, _ = request(
                base, "POST", "/api/v1/auth/token", body={"email": "admin@live.test", "password": PASSWORD}
            )
            assert status == 200, body
            jwt = json.loads(body)["access"]
            leaky_path = f"/api/v1/machines?api_key={other_key}&access={jwt}&password={PASSWORD}&page=1"
            status, _, headers = request(
                base, "GET", leaky_path, headers={"Authorization": f"Bearer {jwt}", "X-Request-ID": "leak-check-1"}
            )
            assert status == 200
            assert headers["X-Request-ID"] == "leak-check-1"

            samples = scrape(base)
            assert len(worker_pids(live["metrics_dir"])) == 2, "both workers should have served"

            assert http_count(samples, "/healthz", "GET", "200") == 12
            assert http_count(samples, "/api/v1/agent/heartbeat", "GET", "200") == 10
            assert http_count(samples, "/api/v1/agent/heartbeat", "GET", "401") == 4
            assert http_count(samples, "/api/v1/ingest", "POST", "202") == 3
            assert http_count(samples, "/api/v1/ingest", "POST", "400") == 1
            assert http_count(samples, "/metrics", "GET", "404") == 1
            assert http_count(samples, "/api/v1/machines", "GET", "200") == 1
            assert (
                value(
                    samples,
                    "haltless_http_request_duration_seconds_count",
                    route="/api/v1/agent/heartbeat",
                    method="GET",
                    status="200",
                )
                == 10
            )
            assert value(samples, "haltless_readings_accepted_total") == 12
            assert value(samples, "haltless_readings_refused_total", reason="invalid") == 2
            assert value(samples, "haltless_ingest_batches_total", outcome="accepted") == 3
            assert value(samples, "haltless_api_key_auth_failures_total", reason="invalid") == 4

            # A worker dies and is replaced: what it counted is still counted.
            victim = sorted(worker_pids(live["metrics_dir"]))[0]
            os.kill(victim, signal.SIGKILL)
            deadline, more = time.monotonic() + 30, 0
            while len(worker_pids(live["metrics_dir"]) - {victim}) < 2 and time.monotonic() < deadline:
                more += request(base, "GET", "/healthz")[0] == 200  # the replacement's first request makes its files
                time.sleep(0.05)
            assert len(worker_pids(live["metrics_dir"]) - {victim}) == 2, "gunicorn did not replace the worker"
            samples = scrape(base)
            assert http_count(samples, "/healthz", "GET", "200") == 12 + more
            assert value(samples, "haltless_readings_accepted_total") == 12
            assert value(samples, "haltless_api_key_auth_failures_total", reason="invalid") == 4

        out_lines = live["out"].read_text().splitlines()
        err_lines = live["err"].read_text().splitlines()
        lines = [json.loads(line) for line in out_lines + err_lines]  # every line is JSON
        access = [line for line in lines if line["logger"] == "gunicorn.access"]
        app_requests = [line for line in lines if line["logger"] == "haltless.request"]
        assert len(access) >= len(calls) + 2 and len(app_requests) >= len(calls) + 2
        heartbeat = next(
            line for line in app_requests if line["route"] == "/api/v1/agent/heartbeat" and line["status"] == 200
        )
        assert heartbeat["caller"] == "api_key" and heartbeat["key_prefix"] == live_env["prefix"]
        assert heartbeat["method"] == "GET" and heartbeat["duration_ms"] > 0 and heartbeat["tenant"]
        leak_access = next(line for line in access if line["request_id"] == "leak-check-1")
        assert leak_access["query"] == "api_key=[REDACTED]&access=[REDACTED]&password=[REDACTED]&page=1"
        leak_app = next(line for line in app_requests if line["request_id"] == "leak-check-1")
        assert leak_app["caller"] == "user" and leak_app["route"] == "/api/v1/machines"

        everything = "\n".join(out_lines + err_lines)
        for secret in (key, other_key, jwt, jwt.rsplit(".", 1)[1], PASSWORD, bad_key):
            assert secret not in everything, f"{secret[:8]}… leaked into a log"

    def test_plain_access_log_with_headers_is_redacted(self, live_env):
        key = live_env["key"]
        access_format = '%(h)s "%(r)s" %(s)s "%({authorization}i)s" "%({x-api-key}i)s" "%(f)s"'
        with gunicorn(
            live_env, "plain", workers=1, log_format="plain", extra=[f"--access-logformat={access_format}"]
        ) as live:
            status, _, _ = request(
                live["base"],
                "GET",
                f"/api/v1/agent/heartbeat?key={key}",
                headers={"Authorization": f"Bearer {key}", "X-API-Key": key, "Referer": f"http://x.test/?token={key}"},
            )
            assert status == 200
        log = live["out"].read_text()
        line = next(line for line in log.splitlines() if "/api/v1/agent/heartbeat" in line)
        assert key not in log + live["err"].read_text()
        assert '"GET /api/v1/agent/heartbeat?key=[REDACTED] HTTP/1.1" 200' in line
        assert '"Bearer [REDACTED]" "hlts_[REDACTED]" "http://x.test/?token=[REDACTED]"' in line


def http_count(samples: dict, route: str, method: str, status: str) -> float:
    return value(samples, "haltless_http_request_duration_seconds_count", route=route, method=method, status=status)
