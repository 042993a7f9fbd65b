"""gunicorn's configuration, read from the working directory (the image's /app).

Command-line flags (the Dockerfile's CMD) override anything set here.

- Prometheus multiprocess mode: every worker writes its samples to files in
  PROMETHEUS_MULTIPROC_DIR, and /metrics sums them; the directory must be set
  before any worker imports prometheus_client, so it is set here (a fresh
  temporary directory unless the environment names one), emptied when the
  master starts, and a dead worker's live gauges are dropped in child_exit.
- The access log (on with --access-logfile) goes through the app's redaction
  (haltless.gunicorn_logging).
"""

import os
import shutil
import tempfile

_created_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _created_metrics_dir = tempfile.mkdtemp(prefix="haltless-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _created_metrics_dir

logger_class = "haltless.gunicorn_logging.RedactingLogger"


def on_starting(server):
    from core.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server, worker):
    from core.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def on_exit(server):
    if _created_metrics_dir:
        shutil.rmtree(_created_metrics_dir, ignore_errors=True)
