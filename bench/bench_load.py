"""Load test: the real app under gunicorn, driven by locust from a process of its own.

gunicorn (2 sync workers, loopback, a free port) serves the app on the bench
database; locust (headless, a fixed number of users with no think time, a
fixed duration) sends 50% heartbeats, 30% 500-reading ingests and 20% readings
queries, each request with one of a hundred API keys picked at random. The
same gunicorn configuration serving bench/trivial_wsgi.py under the same load
generator is the ceiling of the stack: every endpoint's requests per second
is read as a share of it. Everything runs on 127.0.0.1 and stops by itself.
"""

import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import REPO_ROOT, Context, Measurement

TITLE = "Load: 2 gunicorn workers under locust (50% heartbeats, 30% 500-reading ingests, 20% readings queries)"

WORKERS = 2
USERS = 16
AGENT_COUNT = 100
SCOPES = ["ingest", "agent", "read:sensors"]
SENSORS = [
    ("bearing_temp", "temperature"),
    ("oil_pressure", "pressure"),
    ("vibration", "vibration"),
    ("motor_current", "current"),
    ("spindle_speed", "speed"),
]
# 100 timestamps x 5 sensors: the 500-reading batch of one agent's machine.
TIMESTAMPS_PER_INGEST = 100
LOCUSTFILE = REPO_ROOT / "bench" / "locustfile.py"
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30
ALONE_REQUESTS = 20
HTTP_TIMEOUT = 30

HEARTBEAT = "GET /api/v1/agent/heartbeat"
INGEST = "POST /api/v1/ingest"
READINGS = "GET /api/v1/sensor-data/readings"
TRIVIAL = "GET / (trivial WSGI)"


def run(ctx: Context) -> list[Measurement]:
    ctx.truncate_all()
    agents = create_agents()
    load_seconds = ctx.scale(30, 8)
    ceiling_seconds = ctx.scale(10, 5)
    with tempfile.TemporaryDirectory(prefix="haltless-load-") as tmp:
        workdir = Path(tmp)
        fixture = workdir / "fixture.json"
        # The keys' secrets: readable by this user only, gone with the directory.
        fixture.touch(mode=0o600)
        fixture.write_text(
            json.dumps(
                {
                    "agents": agents,
                    "timestamps_per_ingest": TIMESTAMPS_PER_INGEST,
                    "ts_origin": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
                }
            )
        )
        ceiling = serve_and_drive(
            ctx,
            app="bench.trivial_wsgi:application",
            ready_path="/",
            prepare=lambda base: {TRIVIAL: one_at_a_time(lambda: http(base, "GET", "/", expect=200))},
            user_class="CeilingUser",
            seconds=ceiling_seconds,
            fixture=fixture,
            workdir=workdir,
        )
        load = serve_and_drive(
            ctx,
            app="haltless.wsgi:application",
            ready_path="/healthz",
            prepare=lambda base: prepare_app(base, agents),
            user_class="AgentMixUser",
            seconds=load_seconds,
            fixture=fixture,
            workdir=workdir,
        )
    return measurements(ctx, ceiling=ceiling, load=load, load_seconds=load_seconds)


# --- Data -------------------------------------------------------------------------------


def create_agents() -> list[dict]:
    """A tenant with one machine of five sensors per agent, and a key per agent."""
    from apikeys.services import api_key_create
    from core.caller import Caller
    from telemetry.models import Machine, Sensor
    from tenants.services import tenant_create

    # The top tier: the load test measures the service, not the tier's rate-limit caps
    # (a free tenant's 100,000 readings a minute is less than ingest now stores under this load).
    tenant = tenant_create(name="Load test plant", tier="enterprise")
    agents = []
    for number in range(AGENT_COUNT):
        machine = Machine.objects.create(tenant=tenant, external_id=f"press-{number:03d}", name=f"Press {number}")
        Sensor.objects.bulk_create(Sensor(machine=machine, key=key, kind=kind) for key, kind in SENSORS)
        issued = api_key_create(
            by=Caller.system(tenant_id=tenant.id), name=f"agent {number:03d}", scopes_requested=SCOPES
        )
        agents.append({"key": issued.secret, "machine": machine.external_id, "sensors": [key for key, _ in SENSORS]})
    return agents


def ingest_body(agent: dict, origin: datetime) -> dict:
    return {
        "readings": [
            {
                "machine": agent["machine"],
                "sensor": sensor,
                "ts": (origin + timedelta(seconds=step)).isoformat(),
                "value": step,
            }
            for step in range(TIMESTAMPS_PER_INGEST)
            for sensor in agent["sensors"]
        ]
    }


def prepare_app(base_url: str, agents: list[dict]) -> dict[str, float]:
    """Fill and warm the app, then time each endpoint alone; the median latency of each.

    One ingest per agent first, so each sensor has a full page of readings; it
    is also the check that every endpoint answers as the contract says before
    locust starts: a wrong status fails the module with the body.
    """
    origin = datetime.now(UTC) - timedelta(hours=4)
    for agent in agents:
        http(base_url, "POST", "/api/v1/ingest", agent["key"], ingest_body(agent, origin), expect=202)
    page = http(base_url, "GET", readings_path(agents[0]), agents[0]["key"], expect=200)
    if len(page.get("results", [])) != TIMESTAMPS_PER_INGEST:
        raise AssertionError(f"{readings_path(agents[0])} gave {len(page.get('results', []))} readings, expected 100")
    batches = itertools.count(1)
    calls = {
        HEARTBEAT: lambda: http(base_url, "GET", "/api/v1/agent/heartbeat", agents[0]["key"], expect=200),
        READINGS: lambda: http(base_url, "GET", readings_path(agents[1]), agents[0]["key"], expect=200),
        # Each batch 2 minutes before the last (a batch spans 100 s), so none repeats a stored reading.
        INGEST: lambda: http(
            base_url,
            "POST",
            "/api/v1/ingest",
            agents[2]["key"],
            ingest_body(agents[2], origin - timedelta(minutes=2 * next(batches))),
            expect=202,
        ),
    }
    for call in calls.values():  # warm-up: each worker's first requests pay for lazy imports
        for _ in range(WORKERS * 2):
            call()
    return {name: one_at_a_time(call) for name, call in calls.items()}


def readings_path(agent: dict) -> str:
    return f"/api/v1/sensor-data/readings?machine={agent['machine']}&sensor={agent['sensors'][0]}"


def one_at_a_time(call: Callable[[], object]) -> float:
    """The median latency, in ms, of `call` made ALONE_REQUESTS times in a row (no concurrency)."""
    times = []
    for _ in range(ALONE_REQUESTS):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def http(
    base_url: str, method: str, path: str, key: str | None = None, body: dict | None = None, *, expect: int
) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method)
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    if status != expect:
        raise AssertionError(f"{method} {path}: {status}, expected {expect}: {payload[:500]!r}")
    return json.loads(payload) if payload else {}


# --- Processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def serve_and_drive(
    ctx: Context,
    *,
    app: str,
    ready_path: str,
    prepare: Callable[[str], dict[str, float]],
    user_class: str,
    seconds: int,
    fixture: Path,
    workdir: Path,
) -> dict:
    """Serve `app` with gunicorn, prepare it (warm-up, requests one at a time), run locust against it."""
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    server_log = workdir / f"gunicorn-{user_class}.log"
    pid_file = workdir / f"gunicorn-{user_class}.pid"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        f"--bind={HOST}:{port}",
        f"--workers={WORKERS}",
        "--worker-class=sync",
        "--timeout=60",
        "--log-level=warning",
        f"--pid={pid_file}",
    ]
    profile_dir = os.environ.get("BENCH_PROFILE_DIR")
    if profile_dir:
        # Sampled from outside the workers; the figures of a profiled run are not the ones to quote.
        profile = Path(profile_dir).resolve() / f"py-spy-{user_class}.txt"
        py_spy = str(Path(sys.executable).with_name("py-spy"))
        command = [py_spy, "record", "--subprocesses", "--format=raw", f"--output={profile}", "--", *command]
        ctx.notes.append(f"PROFILED RUN (BENCH_PROFILE_DIR): py-spy samples in {profile}")
    server = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=ctx.server_env(DJANGO_ALLOWED_HOSTS=HOST),
        stdout=server_log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_serving(server, base_url + ready_path, server_log)
        alone = prepare(base_url)
        result = drive(base_url, user_class=user_class, seconds=seconds, fixture=fixture, workdir=workdir)
        result["alone_ms"] = alone
        result["server_errors"] = server_log.read_text().count("Traceback")
        return result
    finally:
        stop(server, pid_file)


def wait_until_serving(server: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not serve {url} within {STARTUP_TIMEOUT} s: {log.read_text()[-2000:]}")


def drive(base_url: str, *, user_class: str, seconds: int, fixture: Path, workdir: Path) -> dict:
    result_file = workdir / f"locust-{user_class}.json"
    log = workdir / f"locust-{user_class}.log"
    env = dict(os.environ, BENCH_LOAD_FIXTURE=str(fixture), BENCH_LOAD_RESULT=str(result_file))
    command = [
        sys.executable,
        "-m",
        "locust",
        f"--locustfile={LOCUSTFILE}",
        "--headless",
        f"--users={USERS}",
        f"--spawn-rate={USERS}",
        f"--run-time={seconds}s",
        "--stop-timeout=10",
        f"--host={base_url}",
        "--only-summary",
        "--loglevel=WARNING",
        user_class,
    ]
    with log.open("w") as out:
        # Bounded: the run time, plus room for start-up and the stop timeout.
        completed = subprocess.run(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 60
        )
    # Locust exits 1 when a request failed; the result file counts them.
    if completed.returncode not in (0, 1) or not result_file.exists():
        raise RuntimeError(f"locust exited with {completed.returncode}: {log.read_text()[-2000:]}")
    return json.loads(result_file.read_text())


def stop(server: subprocess.Popen, pid_file: Path) -> None:
    """Shut gunicorn down gracefully (its master's pid is in the pid file when py-spy wraps it)."""
    if server.poll() is None:
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- Figures ----------------------------------------------------------------------------------


def measurements(ctx: Context, *, ceiling: dict, load: dict, load_seconds: int) -> list[Measurement]:
    trivial = ceiling["endpoints"][TRIVIAL]
    ceiling_rps = trivial["count"] / ceiling["seconds"]
    ceiling_name = "trivial WSGI"
    trivial_alone = ceiling["alone_ms"][TRIVIAL]
    figures = [
        Measurement("ceiling: trivial WSGI, no database", ceiling_rps, "req/s"),
        Measurement("ceiling: p50", trivial["p50_ms"], "ms"),
        Measurement("ceiling: p99", trivial["p99_ms"], "ms"),
        Measurement("ceiling: one request alone", trivial_alone, "ms"),
    ]
    # Service time without queueing: one request at a time, before the load.
    figures += [
        Measurement(
            f"{name} alone", load["alone_ms"][name], "ms", baseline="trivial alone", baseline_value=trivial_alone
        )
        for name in (HEARTBEAT, INGEST, READINGS)
    ]
    total = sum(e["count"] for e in load["endpoints"].values())
    figures.append(
        Measurement(
            "mix: all endpoints", total / load["seconds"], "req/s", baseline=ceiling_name, baseline_value=ceiling_rps
        )
    )
    for name in (HEARTBEAT, INGEST, READINGS):
        endpoint = load["endpoints"].get(name, {"count": 0, "errors": 0, "p50_ms": 0.0, "p99_ms": 0.0})
        figures += [
            Measurement(
                f"{name}",
                endpoint["count"] / load["seconds"],
                "req/s",
                baseline=ceiling_name,
                baseline_value=ceiling_rps,
            ),
            Measurement(
                f"{name} p50", endpoint["p50_ms"], "ms", baseline="ceiling p50", baseline_value=trivial["p50_ms"]
            ),
            Measurement(
                f"{name} p99", endpoint["p99_ms"], "ms", baseline="ceiling p99", baseline_value=trivial["p99_ms"]
            ),
        ]
    ingests = load["endpoints"].get(INGEST, {"count": 0})["count"]
    figures.append(
        Measurement(
            "readings stored through ingest",
            ingests * TIMESTAMPS_PER_INGEST * len(SENSORS) / load["seconds"],
            "readings/s",
        )
    )
    errors = sum(e["errors"] for e in load["endpoints"].values()) + trivial["errors"]
    figures.append(
        Measurement(
            "errors (non-2xx or failed requests)",
            errors,
            "requests",
            target="= 0",
            ok=errors == 0 and load["server_errors"] == 0,
            note="; ".join(load["error_samples"] + ceiling["error_samples"])[:1000],
        )
    )
    ctx.notes.append(
        f"{USERS} locust users with no think time against {WORKERS} gunicorn sync workers, all on this "
        f"{os.cpu_count()}-core machine with PostgreSQL; the mix ran {load_seconds} s "
        f"({total:,} requests), the ceiling {ceiling['seconds']:.0f} s. Each request uses one of "
        f"{AGENT_COUNT} API keys at random; ingests carry {TIMESTAMPS_PER_INGEST} timestamps x "
        f"{len(SENSORS)} sensors of the key's machine. Latencies are under saturation, so they include queueing."
    )
    return figures
