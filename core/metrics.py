"""Every Prometheus metric of the service, and the small helpers the apps call.

One module, so the names, labels and their allowed values are reviewed in one
place (deploy/ and its test read the same names). Apps never touch the metric
objects; they call the helpers below, which keep every label bounded: a value
outside a label's known set is counted as "other", so no label ever carries a
secret, an email, a raw path or any other unbounded value.

Multiprocess mode: with PROMETHEUS_MULTIPROC_DIR set in the environment before
this module is first imported (gunicorn.conf.py and haltless.celery see to it),
every process writes its samples to files in that directory, and /metrics sums
them over every process, living or dead (see `exposition()`).
"""

import hmac
import os
import threading
from collections.abc import Mapping

from prometheus_client import REGISTRY as _PROCESS_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"

# --- Allowed label values -----------------------------------------------------------------
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Why a request with an API key or enrollment token was refused before reaching its view.
AUTH_FAILURE_REASONS = frozenset(
    {
        "invalid",  # malformed or unknown secret
        "revoked",
        "rotated",  # a previous secret past its overlap
        "expired",
        "disabled",
        "ip_denied",  # client address outside allowed_cidrs
        "scope",  # valid key without the endpoint's scope
        "enrollment_invalid",  # any refusal of an hlte_ enrollment token
    }
)
# Why an ingest batch (and so its readings) was refused.
INGEST_REFUSAL_REASONS = frozenset(
    {
        "invalid",  # a bad reading, an empty or malformed batch
        "too_large",  # body over the ingest limit (413), or more readings than a batch may hold
        "conflict",  # a machine or sensor deleted while the batch was stored (409)
        "rate_limited",  # readings_per_minute or a tier cap (429)
        "machine_scope",  # a machine outside a machine-scoped key
    }
)
# Which limit answered 429.
RATE_LIMITS = frozenset(
    {
        "key_requests",  # an API key's requests_per_minute (or its tenant's tier cap)
        "key_readings",  # an API key's readings_per_minute (or its tenant's tier cap)
        "throttle",  # a DRF throttle: failed logins, wrong current passwords, AI probes
        "self_rotation",  # POST /agent/key/rotate, 10 a day per key
        "public_revocation",  # POST /public/credentials/revoke, per client address
    }
)
RETENTION_TRIGGERS = frozenset({"manual", "schedule", "command", "maintenance"})
RETENTION_OUTCOMES = frozenset({"succeeded", "failed"})
RETENTION_DATA = frozenset({"readings", "heartbeats", "rollups"})
WEBHOOK_EVENT_TYPES = frozenset(
    {"api_key.expiring", "api_key.unused", "api_key.exposed", "api_key.ip_denied", "api_key.rotated"}
)
# One attempt's result: delivered (2xx), failed (will be retried), gave_up (last attempt failed),
# refused (the address rules said no: never connected, never retried).
WEBHOOK_OUTCOMES = frozenset({"delivered", "failed", "gave_up", "refused"})
CELERY_OUTCOMES = frozenset({"succeeded", "failed", "retried"})

# --- The metrics ------------------------------------------------------------------------------
# Latency buckets for an API that answers most requests in milliseconds.
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_JOB_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)

# Its _count is the request counter (by route template, method and status): a separate
# Counter would cost every request one more shared-memory write for the same number.
HTTP_REQUEST_DURATION = Histogram(
    "haltless_http_request_duration_seconds",
    "Requests answered and the time to answer them (in the app, middleware included), "
    "by route template, method and status.",
    ["route", "method", "status"],
    buckets=_HTTP_BUCKETS,
)
READINGS_ACCEPTED = Counter("haltless_readings_accepted", "Readings in ingest batches that were accepted.")
READINGS_REFUSED = Counter(
    "haltless_readings_refused", "Readings in ingest batches that were refused, by reason.", ["reason"]
)
INGEST_BATCHES = Counter(
    "haltless_ingest_batches", "Ingest batches, by outcome (accepted or a refusal reason).", ["outcome"]
)
API_KEY_AUTH_FAILURES = Counter(
    "haltless_api_key_auth_failures", "Requests refused because of their API key or enrollment token.", ["reason"]
)
RATE_LIMITED = Counter("haltless_rate_limited_requests", "Requests answered 429, by the limit they hit.", ["limit"])
RETENTION_RUNS = Counter(
    "haltless_retention_runs", "Retention runs finished, by trigger and outcome.", ["trigger", "outcome"]
)
RETENTION_RUN_DURATION = Histogram(
    "haltless_retention_run_duration_seconds",
    "Time a retention run took, from its start to its end, by trigger.",
    ["trigger"],
    buckets=_JOB_BUCKETS,
)
RETENTION_ROWS_DELETED = Counter("haltless_retention_rows_deleted", "Rows retention deleted, by data class.", ["data"])
RETENTION_PARTITIONS_DROPPED = Counter(
    "haltless_retention_partitions_dropped", "Whole reading partitions dropped by the maintenance job."
)
RETENTION_LAST_SUCCESS = Gauge(
    "haltless_retention_last_success_timestamp_seconds",
    "When the last successful retention run (any tenant) finished, as a Unix time.",
    multiprocess_mode="max",
)
WEBHOOK_EVENTS = Counter("haltless_webhook_events", "Webhook events put in the outbox, by type.", ["type"])
WEBHOOK_DELIVERIES = Counter(
    "haltless_webhook_deliveries", "Webhook delivery attempts, by event type and outcome.", ["type", "outcome"]
)
WEBHOOK_DELIVERY_DURATION = Histogram(
    "haltless_webhook_delivery_duration_seconds",
    "Time one webhook delivery attempt took.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CELERY_TASKS = Counter("haltless_celery_tasks", "Celery task runs, by task name and outcome.", ["task", "outcome"])
CELERY_TASK_DURATION = Histogram(
    "haltless_celery_task_duration_seconds",
    "Time a Celery task run took, by task name.",
    ["task"],
    buckets=_JOB_BUCKETS,
)


def _bounded(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


# --- Helpers: what the apps call --------------------------------------------------------------


# (route, method, status) -> the histogram's child: labels() takes a lock and validates on
# every call; the heartbeat path should pay a dict lookup instead.
_http_children: dict[tuple[str, str, int], object] = {}


def http_request_observe(*, route: str, method: str, status: int, seconds: float) -> None:
    """One answered request. `route` is the resolver's route template (never the raw path)."""
    child = _http_children.get((route, method, status))
    if child is None:
        child = HTTP_REQUEST_DURATION.labels(route, method if method in HTTP_METHODS else OTHER, str(status))
        if len(_http_children) < 10_000:  # bounded anyway (route templates x methods x statuses)
            _http_children[(route, method, status)] = child
    child.observe(seconds)


def readings_accepted(*, count: int) -> None:
    READINGS_ACCEPTED.inc(count)
    INGEST_BATCHES.labels("accepted").inc()


def readings_refused(*, reason: str, count: int) -> None:
    """An ingest batch of `count` readings (0 when they cannot be counted, e.g. a 413) was refused."""
    reason = _bounded(reason, INGEST_REFUSAL_REASONS)
    if count:
        READINGS_REFUSED.labels(reason).inc(count)
    INGEST_BATCHES.labels(reason).inc()


def api_key_auth_failed(*, reason: str) -> None:
    API_KEY_AUTH_FAILURES.labels(_bounded(reason, AUTH_FAILURE_REASONS)).inc()


def rate_limited(*, limit: str) -> None:
    RATE_LIMITED.labels(_bounded(limit, RATE_LIMITS)).inc()


def retention_run_finished(
    *,
    trigger: str,
    outcome: str,
    seconds: float | None,
    rows: Mapping[str, int],
    partitions: int = 0,
    finished_at: float | None = None,
) -> None:
    """A retention run ended. `rows` maps a data class (readings, heartbeats, rollups) to rows deleted."""
    trigger = _bounded(trigger, RETENTION_TRIGGERS)
    outcome = _bounded(outcome, RETENTION_OUTCOMES)
    RETENTION_RUNS.labels(trigger, outcome).inc()
    if seconds is not None:
        RETENTION_RUN_DURATION.labels(trigger).observe(seconds)
    for data, count in rows.items():
        if count:
            RETENTION_ROWS_DELETED.labels(_bounded(data, RETENTION_DATA)).inc(count)
    if partitions:
        RETENTION_PARTITIONS_DROPPED.inc(partitions)
    if outcome == "succeeded" and finished_at is not None:
        RETENTION_LAST_SUCCESS.set(finished_at)


def retention_partitions_dropped(*, count: int = 1) -> None:
    """Whole partitions dropped by maintenance (also counted by retention_run_finished(partitions=...))."""
    RETENTION_PARTITIONS_DROPPED.inc(count)


def webhook_event_enqueued(*, event_type: str) -> None:
    WEBHOOK_EVENTS.labels(_bounded(event_type, WEBHOOK_EVENT_TYPES)).inc()


def webhook_delivery_attempted(*, event_type: str, outcome: str, seconds: float | None = None) -> None:
    WEBHOOK_DELIVERIES.labels(_bounded(event_type, WEBHOOK_EVENT_TYPES), _bounded(outcome, WEBHOOK_OUTCOMES)).inc()
    if seconds is not None:
        WEBHOOK_DELIVERY_DURATION.observe(seconds)


def celery_task_finished(*, task: str, outcome: str, seconds: float | None = None) -> None:
    """`task` is a registered task name (a bounded set: the code's own tasks)."""
    CELERY_TASKS.labels(task, _bounded(outcome, CELERY_OUTCOMES)).inc()
    if seconds is not None:
        CELERY_TASK_DURATION.labels(task).observe(seconds)


# --- Exposition -------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> bytes:
    """The text format of every metric: summed over all processes in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(_PROCESS_REGISTRY)


def mark_process_dead(pid: int) -> None:
    """A worker process exited: drop its live gauges (its counters stay summed in)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


def prepare_multiprocess_dir(path: str, *, keep_pid: int | None = None) -> None:
    """Create `path` and empty it of an earlier run's samples (once, before any worker starts).

    `keep_pid`: a process that may already have written samples (the Celery
    main process) keeps its own files.
    """
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db") and (keep_pid is None or not name.endswith(f"_{keep_pid}.db")):
            os.unlink(os.path.join(path, name))


def metrics_wsgi_app(*, token: str):
    """/metrics as a WSGI app (the Celery worker's listener): the same bearer-token rule as the web's view."""

    def app(environ, start_response):
        given = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = given.partition(" ")
        if (
            environ.get("PATH_INFO") not in ("/metrics", "/metrics/")
            or not token
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(value.encode(), token.encode())
        ):
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"detail": "Not found."}']
        body = exposition()
        start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return [body]

    return app


def serve_in_background(*, port: int, token: str, host: str = "0.0.0.0") -> None:  # noqa: S104 - the worker's container port
    """Serve metrics_wsgi_app on a daemon thread (the Celery worker has no web server of its own)."""
    from wsgiref.simple_server import make_server

    from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

    server = make_server(host, port, metrics_wsgi_app(token=token), ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="metrics-listener", daemon=True).start()
