"""Hot paths on gunicorn with keep-alive clients: heartbeat and API-key requests against their ceilings.

The app and two baseline views (bench/serve_urls.py) are served by the same
gunicorn, the same Django and middleware, on the bench database, once with
sync workers and once with gthread workers. bench/fleet_client.py (aiohttp,
a process of its own) drives each path with CONNECTIONS keep-alive clients
back to back for a few seconds; rounds rotate the order of the paths and
each path's best round counts.

1. `GET /api/v1/agent/heartbeat` against `/_bench/select-insert` (one indexed
   SELECT of the key by prefix, one INSERT of a heartbeat row, persistent
   connection, durable commit): target >= 0.8x (defect < 0.6x). Against
   `/_bench/select-insert-async` (the same with the heartbeat's asynchronous
   commit: the same work done the fastest way) and `/_bench/trivial` (a Django
   JSON view, no database): reported.
2. `GET /api/v1/machines` with an API key against the same with a JWT: the
   key's time per request <= 1.0x the JWT's.
3. gthread against sync workers, per path, with keep-alive clients (sync
   workers close every connection after one response).

Every path is served with one of KEYS keys per connection, so that no key's
rate limit is what is measured.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.bench_load import HOST, free_port, stop, wait_until_serving
from bench.harness import REPO_ROOT, Context, Measurement

TITLE = "Hot paths on gunicorn: heartbeat vs SELECT+INSERT and trivial views, API key vs JWT, sync vs gthread"

WORKERS = 2
THREADS = 4
CONNECTIONS = 32
WORKER_CLASSES = ("sync", "gthread")
TRIVIAL = "trivial view"
SELECT_INSERT = "select+insert view"
SELECT_INSERT_ASYNC = "select+insert view, async commit"
HEARTBEAT = "heartbeat"
MACHINES_KEY = "GET /machines, API key"
MACHINES_JWT = "GET /machines, JWT"
PATHS = (TRIVIAL, SELECT_INSERT, SELECT_INSERT_ASYNC, HEARTBEAT, MACHINES_KEY, MACHINES_JWT)


def gunicorn_command(app: str, port: int, worker_class: str, pid_file: Path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        f"--bind={HOST}:{port}",
        f"--workers={WORKERS}",
        f"--worker-class={worker_class}",
        "--timeout=60",
        "--log-level=warning",
        f"--pid={pid_file}",
    ]
    if worker_class == "gthread":
        command += [f"--threads={THREADS}", "--keep-alive=75"]
    return command


def serve(ctx: Context, *, app: str, worker_class: str, workdir: Path, ready_path: str, settings: str):
    """Start gunicorn; returns (process, base_url, pid_file, log)."""
    port = free_port()
    log = workdir / f"gunicorn-{worker_class}-{port}.log"
    pid_file = workdir / f"gunicorn-{worker_class}-{port}.pid"
    server = subprocess.Popen(
        gunicorn_command(app, port, worker_class, pid_file),
        cwd=REPO_ROOT,
        env=ctx.server_env(DJANGO_ALLOWED_HOSTS=HOST, DJANGO_SETTINGS_MODULE=settings),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://{HOST}:{port}"
    try:
        wait_until_serving(server, base + ready_path, log)
    except BaseException:
        stop(server, pid_file)
        raise
    return server, base, pid_file, log


def drive(spec: dict, workdir: Path, name: str) -> dict:
    spec_file, out_file = workdir / f"{name}.spec.json", workdir / f"{name}.out.json"
    spec_file.touch(mode=0o600)  # it holds API keys
    spec_file.write_text(json.dumps(spec))
    timeout = spec.get("seconds", 0) + spec.get("warmup", 0) + 90
    completed = subprocess.run(
        [sys.executable, "-m", "bench.fleet_client", str(spec_file), str(out_file)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0 or not out_file.exists():
        raise RuntimeError(f"fleet_client exited with {completed.returncode}: {completed.stderr[-2000:]}")
    return json.loads(out_file.read_text())


def _setup(count: int) -> dict:
    from apikeys.services import api_key_create
    from core.caller import Caller
    from telemetry.services import machine_create
    from tenants.models import Tenant
    from users.models import Role
    from users.tests.factories import UserFactory
    from users.tokens import token_pair_for

    tenant = Tenant.objects.create(name="Hot paths plant", tier="enterprise")
    for number in range(5):
        machine_create(
            by=Caller.system(tenant_id=tenant.pk),
            external_id=f"hp-{number}",
            name=f"Press {number}",
            sensors=[("temp", "temperature"), ("pressure", "pressure")],
        )
    keys = [
        api_key_create(
            by=Caller.system(tenant_id=tenant.id), name=f"agent {n}", scopes_requested=["agent", "read:machines"]
        ).secret
        for n in range(count)
    ]
    user = UserFactory(tenant=tenant, role=Role.VIEWER, email="hotpaths@bench.test")
    return {"keys": keys, "jwt": token_pair_for(user)["access"]}


def requests_for(path: str, creds: dict) -> list[dict]:
    def with_key(url: str, name: str) -> list[dict]:
        return [{"path": url, "name": name, "headers": {"Authorization": f"Bearer {k}"}} for k in creds["keys"]]

    if path == TRIVIAL:
        return [{"path": "/_bench/trivial", "name": TRIVIAL}]
    if path == SELECT_INSERT:
        return with_key("/_bench/select-insert", SELECT_INSERT)
    if path == SELECT_INSERT_ASYNC:
        return with_key("/_bench/select-insert-async", SELECT_INSERT_ASYNC)
    if path == HEARTBEAT:
        return with_key("/api/v1/agent/heartbeat", HEARTBEAT)
    if path == MACHINES_KEY:
        return with_key("/api/v1/machines", MACHINES_KEY)
    return [{"path": "/api/v1/machines", "name": MACHINES_JWT, "headers": {"Authorization": f"Bearer {creds['jwt']}"}}]


def measure_worker_class(ctx: Context, worker_class: str, creds: dict, workdir: Path) -> dict[str, dict]:
    seconds, rounds = ctx.scale(4, 2), ctx.scale(2, 1)
    server, base, pid_file, log = serve(
        ctx,
        app="haltless.wsgi:application",
        worker_class=worker_class,
        workdir=workdir,
        ready_path="/_bench/trivial",
        settings="bench.serve_settings",
    )
    best: dict[str, dict] = {}
    try:
        for index in range(rounds):
            order = list(PATHS[index % len(PATHS) :] + PATHS[: index % len(PATHS)])
            for path in order:
                spec = {
                    "mode": "closed",
                    "base": base,
                    "requests": requests_for(path, creds),
                    "connections": CONNECTIONS,
                    "seconds": seconds,
                    "warmup": 1.0,
                }
                result = drive(spec, workdir, f"{worker_class}-{index}-{path.replace(' ', '_').replace('/', '')}")
                figures = result["endpoints"].get(path, {"count": 0, "errors": 0, "rps": 0.0, "p50_ms": 0, "p99_ms": 0})
                figures["error_samples"] = result["error_samples"]
                if path not in best or figures["rps"] > best[path]["rps"]:
                    best[path] = figures
        tracebacks = log.read_text().count("Traceback")
    finally:
        stop(server, pid_file)
    best["_server_errors"] = {"count": tracebacks}
    return best


def run(ctx: Context) -> list[Measurement]:
    ctx.truncate_all()
    creds = _setup(CONNECTIONS)
    results = {}
    with tempfile.TemporaryDirectory(prefix="haltless-hotpaths-") as tmp:
        for worker_class in WORKER_CLASSES:
            results[worker_class] = measure_worker_class(ctx, worker_class, creds, Path(tmp))
    ctx.truncate_all()
    return measurements(ctx, results)


def measurements(ctx: Context, results: dict) -> list[Measurement]:
    figures: list[Measurement] = []
    errors = 0
    for worker_class in WORKER_CLASSES:
        r = results[worker_class]
        errors += sum(r[p]["errors"] for p in PATHS) + r["_server_errors"]["count"]
        label = f"{worker_class} x{WORKERS}" + (f" ({THREADS} threads)" if worker_class == "gthread" else "")
        heartbeat, ceiling, trivial = r[HEARTBEAT]["rps"], r[SELECT_INSERT]["rps"], r[TRIVIAL]["rps"]
        key, jwt = r[MACHINES_KEY]["rps"], r[MACHINES_JWT]["rps"]
        figures += [
            Measurement(f"{label}: trivial Django view (ceiling)", trivial, "req/s"),
            Measurement(
                f"{label}: heartbeat",
                heartbeat,
                "req/s",
                baseline="SELECT+INSERT view, same gunicorn",
                baseline_value=ceiling,
                target=">= 0.8x (defect < 0.6x)",
                ok=heartbeat / ceiling >= 0.8 if ceiling else None,
            ),
            Measurement(
                f"{label}: heartbeat against the same SELECT+INSERT with its asynchronous commit",
                heartbeat,
                "req/s",
                baseline="SELECT+INSERT view, async commit",
                baseline_value=r[SELECT_INSERT_ASYNC]["rps"],
            ),
            Measurement(
                f"{label}: heartbeat against the trivial view",
                heartbeat,
                "req/s",
                baseline="trivial view",
                baseline_value=trivial,
            ),
            Measurement(
                f"{label}: time per API-key request (GET /machines)",
                1000 / key if key else 0.0,
                "ms/req",
                baseline="same with a JWT",
                baseline_value=1000 / jwt if jwt else None,
                target="<= 1.0x",
                ok=(jwt / key <= 1.0) if key and jwt else None,
            ),
            Measurement(
                f"{label}: heartbeat p50",
                r[HEARTBEAT]["p50_ms"],
                "ms",
                baseline="select+insert p50",
                baseline_value=r[SELECT_INSERT]["p50_ms"],
            ),
            Measurement(
                f"{label}: heartbeat p99",
                r[HEARTBEAT]["p99_ms"],
                "ms",
                baseline="select+insert p99",
                baseline_value=r[SELECT_INSERT]["p99_ms"],
            ),
        ]
    for path in PATHS:
        sync, gthread = results["sync"][path]["rps"], results["gthread"][path]["rps"]
        figures.append(
            Measurement(f"gthread against sync workers: {path}", gthread, "req/s", baseline="sync", baseline_value=sync)
        )
    samples = [s for wc in WORKER_CLASSES for p in PATHS for s in results[wc][p]["error_samples"]]
    figures.append(
        Measurement(
            "errors (non-2xx, failed requests, server tracebacks)",
            errors,
            "requests",
            target="= 0",
            ok=errors == 0,
            note="; ".join(samples)[:1000],
        )
    )
    ctx.notes.append(
        f"{CONNECTIONS} keep-alive clients (aiohttp, bench/fleet_client.py, a process of its own) back to back "
        f"against gunicorn ({WORKERS} workers; gthread with {THREADS} threads each), all on this "
        f"{os.cpu_count()}-core machine with PostgreSQL and the load generator: the machine saturates, which is "
        "the point. Best of rotating rounds per path. sync workers close the connection after every response, so "
        "their clients reconnect for every request; gthread keeps connections open. Heartbeats and the "
        "SELECT+INSERT view use one of 32 keys per connection. Rate limits and observed addresses count in "
        "process (bench settings have no Redis)."
    )
    return figures
