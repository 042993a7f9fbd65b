"""The Celery app. Tasks are thin wrappers around services; see each app's tasks.py.

Also what every task run gets, whichever app it belongs to (signals below):
the request id of the web request that sent it (a message header), one log
line and the task-outcome metrics when it ends, and, in the worker, Prometheus
multiprocess bookkeeping and an optional /metrics listener for the scraper.
"""

import logging
import os
import time

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "haltless.settings.local")
# Multiprocess metrics need their directory before prometheus_client is imported anywhere.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

app = Celery("haltless")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

task_logger = logging.getLogger("haltless.task")
REQUEST_ID_HEADER = "request_id"
_OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}
_started: dict[str, tuple[float, object]] = {}


@signals.setup_logging.connect
def _use_django_logging(**kwargs):
    """The worker logs as the web does (settings.LOGGING: format, redaction, request ids), not Celery's way.

    With this receiver Celery leaves logging alone; `--loglevel` is then
    ignored in favour of DJANGO_LOG_LEVEL.
    """
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@signals.before_task_publish.connect
def _carry_request_id(headers=None, **kwargs):
    from core.logging import request_id_var

    request_id = request_id_var.get()
    if headers is not None and request_id != "-":
        headers.setdefault(REQUEST_ID_HEADER, request_id)


@signals.task_prerun.connect
def _task_started(task_id=None, task=None, **kwargs):
    from core.logging import request_id_var, valid_request_id

    request_id = getattr(task.request, REQUEST_ID_HEADER, None) or (task.request.headers or {}).get(REQUEST_ID_HEADER)
    if not valid_request_id(request_id):
        # Eager tasks run inside the sending request and keep its id; others get their own.
        request_id = request_id_var.get() if request_id_var.get() != "-" else task_id
    _started[task_id] = (time.perf_counter(), request_id_var.set(request_id))


@signals.task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **kwargs):
    from core import metrics
    from core.logging import request_id_var

    started, token = _started.pop(task_id, (None, None))
    seconds = time.perf_counter() - started if started is not None else None
    outcome = _OUTCOMES.get(state, "failed")
    metrics.celery_task_finished(task=task.name, outcome=outcome, seconds=seconds)
    task_logger.info(
        "task %s %s %s",
        task.name,
        task_id,
        outcome,
        extra={
            "task": task.name,
            "task_id": task_id,
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 3) if seconds is not None else None,
        },
    )
    if token is not None:
        request_id_var.reset(token)


@signals.worker_init.connect
def _worker_metrics_dir(**kwargs):
    from core.metrics import multiprocess_dir, prepare_multiprocess_dir

    if multiprocess_dir():
        prepare_multiprocess_dir(multiprocess_dir(), keep_pid=os.getpid())


@signals.worker_ready.connect
def _worker_metrics_listener(**kwargs):
    from django.conf import settings

    from core.metrics import serve_in_background

    if settings.WORKER_METRICS_PORT:
        serve_in_background(port=settings.WORKER_METRICS_PORT, token=settings.METRICS_TOKEN)


@signals.worker_process_shutdown.connect
def _worker_process_gone(pid=None, **kwargs):
    from core.metrics import mark_process_dead

    mark_process_dead(pid or os.getpid())
