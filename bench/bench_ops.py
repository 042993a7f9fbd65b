"""What observability costs: the heartbeat with metrics and JSON request logs on, against the same without.

The agent heartbeat (the most frequent request of a fleet; API key, one
INSERT) through Django's full request stack (django.test.Client, every
middleware, DRF) in two configurations of one process, in interleaved rounds:

- with: core.middleware.RequestObservabilityMiddleware (request id, the HTTP
  histogram, the request log line) and the `haltless.request`
  logger at INFO with the production JSON formatter, writing to a real file
  descriptor (/dev/null); prometheus_client in multiprocess mode (mmap files
  in PROMETHEUS_MULTIPROC_DIR), as under gunicorn;
- without (the baseline): the same middleware list without that middleware,
  so no metrics and no request log line.

Measured in a child process, because prometheus_client picks its value class
(multiprocess or not) when it is first imported. Target: with <= 1.1 x without,
both in the app process's CPU time per request (what the middleware costs, robust
to load on a shared machine) and in wall time per request.
"""

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench.harness import REPO_ROOT, Context, Measurement

TITLE = "Operations: heartbeat with metrics and JSON request logs, against the same without"
HEARTBEAT = "/api/v1/agent/heartbeat"
OBSERVABILITY = "core.middleware.RequestObservabilityMiddleware"


def run(ctx: Context) -> list[Measurement]:
    ctx.truncate_all()
    from apikeys.services import api_key_create
    from core.caller import Caller
    from tenants.models import Tenant

    tenant = Tenant.objects.create(name="Bench Plant", tier="enterprise")
    issued = api_key_create(by=Caller.system(tenant_id=tenant.id), name="bench agent", scopes_requested="edge_agent")
    rounds, per_round = ctx.scale(41, 5), ctx.scale(50, 30)
    with tempfile.TemporaryDirectory(prefix="haltless-bench-metrics-") as metrics_dir:
        child = subprocess.run(
            [sys.executable, "-m", "bench.bench_ops", str(rounds), str(per_round)],
            cwd=REPO_ROOT,
            env=ctx.server_env(PROMETHEUS_MULTIPROC_DIR=metrics_dir, BENCH_OPS_KEY=issued.secret),
            capture_output=True,
            text=True,
            timeout=240,
        )
        if child.returncode != 0:
            raise RuntimeError(f"the measuring process failed:\n{child.stderr[-3000:]}")
        figures = json.loads(child.stdout.strip().splitlines()[-1])
    ctx.truncate_all()
    with_us, without_us = figures["with_us"], figures["without_us"]
    with_cpu, without_cpu = figures["with_cpu_us"], figures["without_cpu_us"]
    ctx.notes.append(
        f"Observability: median of {rounds} interleaved rounds of {per_round} heartbeats each through "
        "django.test.Client on PostgreSQL; prometheus_client in multiprocess mode; JSON request log to /dev/null. "
        "The CPU figure (the app process's own CPU time, without the database's) is the one that load on a "
        "shared machine cannot blur, and the stricter: the same added cost over a smaller base."
    )
    return [
        Measurement(
            "heartbeat with metrics + JSON request log (app CPU)",
            with_cpu,
            "µs",
            baseline="same heartbeat without them",
            baseline_value=without_cpu,
            target="<= 1.1x",
            ok=with_cpu / without_cpu <= 1.1,
        ),
        Measurement(
            "heartbeat with metrics + JSON request log (wall)",
            with_us,
            "µs",
            baseline="same heartbeat without them",
            baseline_value=without_us,
            target="<= 1.1x",
            ok=with_us / without_us <= 1.1,
        ),
        Measurement("added app CPU per request (metrics + log line)", with_cpu - without_cpu, "µs"),
    ]


# --- The measuring process ----------------------------------------------------------------------


def _measure(rounds: int, per_round: int) -> dict:
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client
    from django.test.utils import override_settings
    from prometheus_client import values

    from core.logging import JsonFormatter, RequestIdFilter

    assert values.ValueClass.__name__ == "MmapedValue", "prometheus_client is not in multiprocess mode"
    key = os.environ["BENCH_OPS_KEY"]
    assert OBSERVABILITY in settings.MIDDLEWARE

    request_log = logging.getLogger("haltless.request")
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - open for the process's life
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    request_log.addHandler(handler)
    request_log.setLevel(logging.INFO)
    request_log.propagate = False

    def fire(client: Client, count: int) -> tuple[float, float]:
        """(wall seconds, this process's CPU seconds) per request."""
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(count):
            response = client.get(HEARTBEAT, HTTP_AUTHORIZATION=f"Bearer {key}")
            if response.status_code != 200:
                raise RuntimeError(f"heartbeat answered {response.status_code}: {response.content[:200]!r}")
        return (time.perf_counter() - started) / count, (time.process_time() - cpu_started) / count

    with_client = Client(HTTP_HOST="127.0.0.1")
    without_client = Client(HTTP_HOST="127.0.0.1")
    fire(with_client, 50)  # loads its middleware chain (with) and warms up
    with override_settings(MIDDLEWARE=[m for m in settings.MIDDLEWARE if m != OBSERVABILITY]):
        fire(without_client, 50)  # its chain is loaded now, without, and kept
    with_times, without_times = [], []
    for index in range(rounds):
        order = [(with_times, with_client), (without_times, without_client)]
        for times, client in order if index % 2 == 0 else reversed(order):
            times.append(fire(client, per_round))

    def median_us(times, which):
        return statistics.median(t[which] for t in times) * 1e6

    return {
        "with_us": median_us(with_times, 0),
        "without_us": median_us(without_times, 0),
        "with_cpu_us": median_us(with_times, 1),
        "without_cpu_us": median_us(without_times, 1),
    }


if __name__ == "__main__":
    print(json.dumps(_measure(int(sys.argv[1]), int(sys.argv[2]))))
