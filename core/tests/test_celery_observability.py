"""A real Celery worker: its task outcomes on its own /metrics, and the web request's id in its log.

Needs PostgreSQL and a broker, like retention/tests/test_celery_worker.py
(CI's integration run): a prefork worker of 2 processes in multiprocess mode
takes a retention run requested over the API with an X-Request-ID; the
worker's /metrics listener (WORKER_METRICS_PORT, the METRICS_TOKEN rule) then
counts that task and that run exactly, and the worker's JSON log line of the
task carries the request's id.
"""

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from retention.models import RetentionRun
from retention.tests.test_celery_worker import CELERY, REPO_ROOT, RUN_URL, stop_worker, worker_database_url
from retention.tests.test_celery_worker import worker_queue as worker_queue  # a fixture

TOKEN = "worker-scrape-token-0123456789"
REQUEST_ID = "trace-from-the-web-42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_worker_metrics_and_request_id(admin_client, tenant, worker_queue, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "haltless.settings.test",
        "DATABASE_URL": worker_database_url(),
        "CELERY_BROKER_URL": os.environ["CELERY_BROKER_URL"],
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "WORKER_METRICS_PORT": str(port),
        "METRICS_TOKEN": TOKEN,
        "DJANGO_LOG_FORMAT": "json",
    }
    command = [str(CELERY), "-A", "haltless", "worker", "--pool=prefork", "--concurrency=2", "-Q", worker_queue]
    command += ["-n", f"{worker_queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        response = admin_client.post(RUN_URL, format="json", HTTP_X_REQUEST_ID=REQUEST_ID)
        assert response.status_code == 202
        assert response["X-Request-ID"] == REQUEST_ID
        run = RetentionRun.objects.get()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.poll() is None:
            run.refresh_from_db()
            if run.status in (RetentionRun.Status.SUCCEEDED, RetentionRun.Status.FAILED):
                break
            time.sleep(0.2)
        assert run.status == RetentionRun.Status.SUCCEEDED, log_path.read_text()
        time.sleep(0.5)  # the task's postrun signal runs just after the run's last write

        url = f"http://127.0.0.1:{port}/metrics"
        assert get(url, None)[0] == 404
        assert get(url, "wrong")[0] == 404
        status, body = get(url, TOKEN)
        assert status == 200
        samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
        }
        task = frozenset({"task": "retention.run_execute", "outcome": "succeeded"}.items())
        assert samples[("haltless_celery_tasks_total", task)] == 1
        run_labels = frozenset({"trigger": "manual", "outcome": "succeeded"}.items())
        assert samples[("haltless_retention_runs_total", run_labels)] == 1
    finally:
        stop_worker(worker)

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    task_lines = [line for line in lines if line.get("logger") == "haltless.task"]
    assert [(line["task"], line["outcome"], line["request_id"]) for line in task_lines] == [
        ("retention.run_execute", "succeeded", REQUEST_ID)
    ]
    # The service's own log lines in the worker carry the id too.
    assert any(line["logger"] == "retention.services" and line["request_id"] == REQUEST_ID for line in lines)
