"""Soak: fleet load on gunicorn with its Redis stopped and started again in the middle (issue 21).

The app runs as in production (gunicorn gthread, bench_hotpaths' configuration) with
`CELERY_BROKER_URL` on a Redis of this benchmark's own (core/tests/faults.py's
OwnRedis: a free loopback port, no persistence), never the machine's shared one. The
fleet client (bench/fleet_client.py) drives AGENTS edge agents (heartbeat every 10 s,
a 100-reading batch every 2 s, one keep-alive connection each) and READERS dashboards
for SECONDS: Redis is up for the first third, stopped for the second, started again
(empty) for the last. The client records every batch and its answer; then the
database is asked, batch by batch, what it holds.

Asserted (and reported as figures): every reading of a batch answered 2xx is stored
exactly once; every answer that is not a success is a 503 (no 500, no 429 from a lost
counter, no connection dropped or timed out).

Configurable: BENCH_SOAK_SECONDS (default 60, quick 20; `make bench` runs it last and
shortens it to what its budget has left; the issue's "several minutes" is e.g.
BENCH_SOAK_SECONDS=300 `python -m bench soak`),
BENCH_SOAK_AGENTS (default 40: 2,000 readings/s offered, what this 2-core machine
sustains beside the load generator; bench_fleet measures the overload).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.bench_fleet import NAMES, SENSORS, fleet_spec
from bench.bench_hotpaths import serve, stop
from bench.harness import REPO_ROOT, Context, Measurement

TITLE = "Soak: fleet load with its Redis stopped and restarted in the middle; every 2xx'd reading stored once"

BATCH_SIZE = 100
READERS = 4
# What the soak needs besides its load: the fleet's keys, gunicorn's start, Redis' stop and start, the checks.
SETUP_SECONDS = 45


def _fleet(agents: int) -> tuple[list[dict], list[dict]]:
    from apikeys.services import api_key_create
    from core.caller import Caller
    from telemetry.models import Machine, Sensor
    from tenants.models import Tenant

    tenant = Tenant.objects.create(name="Soak plant", tier="enterprise")
    machines = Machine.objects.bulk_create(
        Machine(tenant=tenant, external_id=f"soak-{n:03d}", name=f"Press {n}") for n in range(agents)
    )
    Sensor.objects.bulk_create(Sensor(machine=m, key=key, kind=kind) for m in machines for key, kind in SENSORS)
    by = Caller.system(tenant_id=tenant.pk)
    fleet = [
        {
            "key": api_key_create(by=by, name=f"agent {n:03d}", scopes_requested=["ingest", "agent"]).secret,
            "machine": m.external_id,
            "sensors": [key for key, _ in SENSORS],
        }
        for n, m in enumerate(machines)
    ]
    readers = [
        {"key": api_key_create(by=by, name=f"dashboard {n}", scopes_requested="read_only").secret}
        for n in range(READERS)
    ]
    return fleet, readers


def _stored_by_batch(origin: datetime, batches: list[list]) -> dict[tuple[str, int], int]:
    """Readings stored per (machine, batch number), from the readings' ts (fleet_client's layout:
    batch n of an agent holds steps [n * s, (n + 1) * s) ms after the origin, s = 100 / sensors)."""
    from django.db import connection

    steps = BATCH_SIZE // len(SENSORS)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.external_id, floor(extract(epoch FROM r.ts - %s) * 1000)::bigint / %s AS batch, count(*) "
            "FROM telemetry_sensorreading r JOIN telemetry_sensor s ON s.id = r.sensor_id "
            "JOIN telemetry_machine m ON m.id = s.machine_id GROUP BY 1, 2",
            [origin, steps],
        )
        stored = {(machine, int(batch)): count for machine, batch, count in cursor.fetchall()}
        cursor.execute("SELECT count(*) - count(DISTINCT (sensor_id, ts)) FROM telemetry_sensorreading")
        stored[("", -1)] = cursor.fetchone()[0]  # duplicates, if the unique key ever failed
    return stored


def _redis_keys(redis) -> int:
    """Keys the service has put in our Redis so far (throttles, rate counters, observed IPs)."""
    import redis as redis_client

    return redis_client.Redis(port=redis.port, socket_timeout=1).dbsize()


def _drive(spec: dict, workdir: Path, *, stop_at: float, start_at: float, redis) -> tuple[dict, dict]:
    """Run the fleet client; stop Redis at `stop_at` s and start it again at `start_at` s."""
    spec_file, out_file = workdir / "soak.spec.json", workdir / "soak.out.json"
    spec_file.touch(mode=0o600)  # it holds API keys
    spec_file.write_text(json.dumps(spec))
    client = subprocess.Popen(
        [sys.executable, "-m", "bench.fleet_client", str(spec_file), str(out_file)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wall-clock times (the client stamps each batch with its own): from the client's start.
    started = time.time()
    events = {"started": started}
    try:
        time.sleep(max(0.0, stop_at - (time.time() - started)))
        events["redis_keys"] = _redis_keys(redis)
        events["redis_stopping"] = time.time()
        redis.stop()
        events["redis_stopped"] = time.time()
        time.sleep(max(0.0, start_at - (time.time() - started)))
        events["redis_starting"] = time.time()
        redis.start()
        events["redis_started"] = time.time()
        _, stderr = client.communicate(timeout=spec["seconds"] + 120)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    if client.returncode != 0 or not out_file.exists():
        raise RuntimeError(f"fleet_client exited with {client.returncode}: {stderr[-2000:]}")
    return json.loads(out_file.read_text()), events


def run(ctx: Context) -> list[Measurement]:
    from core.tests.faults import OwnRedis

    seconds = int(os.environ.get("BENCH_SOAK_SECONDS") or ctx.scale(60, 20))
    # It runs last in `make bench` and fits what the budget has left (setup and checks: ~45 s).
    allowed = int(os.environ.get("BENCH_MODULE_SECONDS") or 10**6) - SETUP_SECONDS
    if allowed < seconds:
        ctx.notes.append(f"soak shortened from {seconds} s to {max(allowed, 20)} s to fit the run's budget")
        seconds = max(allowed, 20)
    agents = int(os.environ.get("BENCH_SOAK_AGENTS") or ctx.scale(40, 10))
    ctx.truncate_all()
    fleet, readers = _fleet(agents)
    with tempfile.TemporaryDirectory(prefix="haltless-soak-") as tmp:
        workdir = Path(tmp)
        (workdir / "redis").mkdir()
        redis = OwnRedis(workdir / "redis")
        redis.start()
        # The servers take it from the environment (ctx.server_env copies os.environ).
        os.environ["CELERY_BROKER_URL"] = redis.url
        try:
            server, base, pid_file, log = serve(
                ctx,
                app="haltless.wsgi:application",
                worker_class="gthread",
                workdir=workdir,
                ready_path="/healthz",
                settings="bench.serve_settings",
            )
            try:
                spec = fleet_spec(base, fleet, readers, seconds, trivial=False)
                spec["record_batches"] = True
                origin = datetime.fromisoformat(spec["ts_origin"])
                result, events = _drive(spec, workdir, stop_at=seconds / 3, start_at=2 * seconds / 3, redis=redis)
                tracebacks = log.read_text().count("Traceback")
            finally:
                stop(server, pid_file)
        finally:
            os.environ.pop("CELERY_BROKER_URL", None)
            if redis.process is not None:
                redis.stop()
        stored = _stored_by_batch(origin, result["batches"])
    ctx.truncate_all()
    return _figures(ctx, result, events, stored, seconds=seconds, agents=agents, tracebacks=tracebacks)


def _phase(t: float, events: dict) -> str:
    """Redis up, going or gone (from the SIGTERM until it answers again), or back."""
    if t < events["redis_stopping"]:
        return "up"
    return "down" if t < events["redis_started"] else "back"


def _figures(
    ctx: Context, result: dict, events: dict, stored: dict, *, seconds: int, agents: int, tracebacks: int
) -> list[Measurement]:
    batches = result["batches"]
    acked = [(m, n) for m, n, status, _ in batches if 200 <= status < 300]
    acked_readings = len(acked) * BATCH_SIZE
    acked_stored = sum(min(stored.get(key, 0), BATCH_SIZE) for key in acked)
    short = [key for key in acked if stored.get(key, 0) != BATCH_SIZE]
    duplicates = stored.pop(("", -1))
    refused_stored = sum(stored.get((m, n), 0) for m, n, status, _ in batches if not 200 <= status < 300)
    statuses: dict[str, int] = {}
    for per in result["statuses"].values():
        for status, count in per.items():
            statuses[status] = statuses.get(status, 0) + count
    errors = {s: c for s, c in statuses.items() if not 200 <= int(s) < 300}
    not_503 = sum(c for s, c in errors.items() if s != "503")
    by_phase: dict[str, dict[str, int]] = {"up": {}, "down": {}, "back": {}}
    for _, _, status, t in batches:
        per = by_phase[_phase(t, events)]
        key = "2xx" if 200 <= status < 300 else str(status)
        per[key] = per.get(key, 0) + 1
    endpoints = result["endpoints"]
    ctx.notes.append(
        f"Soak: {agents} agents (a 100-reading batch every 2 s, a heartbeat every 10 s) and {READERS} dashboards "
        f"for {result['seconds']:.0f} s on gunicorn with a Redis of its own, which held "
        f"{events['redis_keys']:,} keys of the service when it was stopped at "
        f"{events['redis_stopping'] - events['started']:.0f} s (gone at "
        f"{events['redis_stopped'] - events['started']:.0f} s); started again, empty, at "
        f"{events['redis_starting'] - events['started']:.0f} s (answering at "
        f"{events['redis_started'] - events['started']:.0f} s). "
        f"{len(batches):,} ingest batches sent, {len(acked):,} answered 2xx ({acked_readings:,} readings): "
        f"{acked_stored:,} of those readings stored, {len(short)} batch(es) short, {duplicates} duplicate(s). "
        "Ingest answers per phase (Redis up / down / back): "
        + " / ".join(", ".join(f"{k} {v:,}" for k, v in sorted(by_phase[p].items())) or "none" for p in by_phase)
        + ". All answers by status: "
        + ", ".join(f"{'no answer' if s == '0' else s} {c:,}" for s, c in sorted(statuses.items()))
        + f"; of the errors, {not_503} not a 503. Readings stored from batches not answered 2xx: {refused_stored:,}. "
        f"Tracebacks in the server log: {tracebacks}. Requests: "
        + ", ".join(f"{name} {e['count']:,} (p99 {e['p99_ms']:.0f} ms)" for name, e in endpoints.items())
        + "."
    )
    heartbeat = endpoints.get(NAMES["heartbeat"], {"count": 0, "errors": 0})
    return [
        Measurement(
            "readings answered 2xx and stored exactly once",
            acked_stored - duplicates,
            "readings",
            baseline="readings answered 2xx",
            baseline_value=acked_readings,
            target="= 1.0x, no duplicates",
            ok=acked_stored == acked_readings and not short and duplicates == 0 and acked_readings > 0,
        ),
        Measurement(
            "error answers that are not 503 (all endpoints, no answer included)",
            not_503,
            "answers",
            baseline="all error answers",
            baseline_value=sum(errors.values()) or None,
            target="= 0",
            ok=not_503 == 0 and tracebacks == 0,
        ),
        Measurement(
            "ingest batches answered 2xx while Redis was down",
            by_phase["down"].get("2xx", 0),
            "batches",
            baseline="ingest batches sent while Redis was down",
            baseline_value=sum(by_phase["down"].values()) or None,
        ),
        Measurement(
            "heartbeats answered 200",
            heartbeat["count"] - heartbeat["errors"],
            "requests",
            baseline="heartbeats sent",
            baseline_value=heartbeat["count"] or None,
        ),
    ]
