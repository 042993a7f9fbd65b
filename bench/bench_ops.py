"""What observability costs: the heartbeat with metrics and JSON request logs on, against the same without.

The agent heartbeat (the most frequent request of a fleet; API key, one
INSERT) through Django's full request stack (django.test.Client, every
middleware, DRF) in two configurations of one process, alternating request by
request (rounds of 50 each way let a control of two identical clients drift
apart by up to 10%; request by request it stays within 1%):

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
    pairs = ctx.scale(3000, 200)
    with tempfile.TemporaryDirectory(prefix="haltless-bench-metrics-") as metrics_dir:
        child = subprocess.run(
            [sys.executable, "-m", "bench.bench_ops", str(pairs)],
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
        f"Observability: {pairs:,} heartbeats with and {pairs:,} without, alternating request by request, "
        "through django.test.Client on PostgreSQL; prometheus_client in multiprocess mode; JSON request log to "
        "/dev/null; the mean per request (a cost is total time over requests). The CPU figure (the app process's "
        "own CPU time, without the database's) is the one that load cannot blur, and the stricter: the same "
        "added cost over a smaller base. Control: two clients that both have the middleware, compared the same "
        f"way, came out at {figures['control_ratio']:.3f}x (the method's own error). Per-request medians: "
        f"{figures['with_cpu_median_us']:,.0f} against {figures['without_cpu_median_us']:,.0f} µs "
        f"({figures['with_cpu_median_us'] / figures['without_cpu_median_us']:.2f}x)."
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


def _measure(pairs: int) -> dict:
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

    header = f"Bearer {key}"

    def one(client: Client) -> tuple[float, float]:
        """(wall seconds, this process's CPU seconds) of one heartbeat."""
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(HEARTBEAT, HTTP_AUTHORIZATION=header)
        spent = time.perf_counter() - started, time.process_time() - cpu_started
        if response.status_code != 200:
            raise RuntimeError(f"heartbeat answered {response.status_code}: {response.content[:200]!r}")
        return spent

    def alternate(first: Client, second: Client, pairs: int) -> tuple[list, list]:
        """Each client's per-request times, the two alternating request by request (ABBA...):
        drift of any speed (the machine's load, its clock, a vacuum) falls on both alike."""
        times_first, times_second = [], []
        for index in range(pairs):
            order = ((times_first, first), (times_second, second))
            for times, client in order if index % 2 == 0 else reversed(order):
                times.append(one(client))
        return times_first, times_second

    with_client, control_client, without_client = (Client(HTTP_HOST="127.0.0.1") for _ in range(3))
    for client in (with_client, control_client):
        for _ in range(50):
            one(client)  # loads its middleware chain (with) and warms up
    with override_settings(MIDDLEWARE=[m for m in settings.MIDDLEWARE if m != OBSERVABILITY]):
        for _ in range(50):
            one(without_client)  # its chain is loaded now, without, and kept
    with_times, without_times = alternate(with_client, without_client, pairs)
    # The control: the same comparison between two clients that both have the middleware.
    control_a, control_b = alternate(with_client, control_client, pairs // 2)

    def mean_us(times, which):
        return statistics.fmean(t[which] for t in times) * 1e6

    return {
        "with_us": mean_us(with_times, 0),
        "without_us": mean_us(without_times, 0),
        "with_cpu_us": mean_us(with_times, 1),
        "without_cpu_us": mean_us(without_times, 1),
        "control_ratio": mean_us(control_a, 1) / mean_us(control_b, 1),
        "with_cpu_median_us": statistics.median(t[1] for t in with_times) * 1e6,
        "without_cpu_median_us": statistics.median(t[1] for t in without_times) * 1e6,
    }


if __name__ == "__main__":
    print(json.dumps(_measure(int(sys.argv[1]))))
