"""A run requested through the API, carried out by a real Celery worker process.

Needs PostgreSQL (the worker and this process share the test database) and a
broker: `DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://... pytest -m celery_worker`.
"""

import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote
from uuid import uuid4

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from haltless.celery import app as celery_app
from retention.models import RetentionRun
from retention.tests.helpers import reading_times

RUN_URL = "/api/v1/settings/admin/retention/run"
REPO_ROOT = Path(django_settings.BASE_DIR)
CELERY = Path(sys.executable).with_name("celery")
WAIT_SECONDS = 60


def worker_database_url() -> str:
    """The URL of the database pytest created, for the worker to use the same one."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def purge_queue(queue: str, *, delete: bool = False) -> None:
    with celery_app.connection_for_write() as conn:
        channel = conn.default_channel
        channel.queue_purge(queue)
        if delete:
            channel.queue_delete(queue)


@pytest.fixture
def worker_queue(settings):
    """A queue of this test only, so no stray message (or worker) of another run interferes."""
    queue = f"retention-it-{uuid4().hex[:12]}"
    settings.RETENTION_QUEUE = queue
    purge_queue(queue)
    yield queue
    purge_queue(queue, delete=True)


def start_worker(queue: str, log_file) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "haltless.settings.test",
        "DATABASE_URL": worker_database_url(),
        "CELERY_BROKER_URL": os.environ["CELERY_BROKER_URL"],
    }
    command = [str(CELERY), "-A", "haltless", "worker", "--pool=solo", "--concurrency=1", "-Q", queue]
    command += ["-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    command += ["--loglevel=INFO"]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_takes_the_run_from_queued_to_succeeded(admin_client, tenant, sensor, add_readings, worker_queue):
    assert not celery_app.conf.task_always_eager, "with a broker the request must really send the task"
    now = timezone.now()
    add_readings(sensor, [now - timedelta(days=120), now - timedelta(days=91), now - timedelta(days=1)])

    # Requested before any worker listens: the run is certainly still queued.
    response = admin_client.post(RUN_URL, format="json")

    assert response.status_code == 202
    run = RetentionRun.objects.get()
    assert response.json() == {"run_id": str(run.pk), "status": "queued"}

    with tempfile.TemporaryFile(mode="w+") as log_file:
        worker = start_worker(worker_queue, log_file)
        seen = ["queued"]
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            while time.monotonic() < deadline and worker.poll() is None:
                status = RetentionRun.objects.values_list("status", flat=True).get(pk=run.pk)
                if status != seen[-1]:
                    seen.append(status)
                if status in (RetentionRun.Status.SUCCEEDED, RetentionRun.Status.FAILED):
                    break
                time.sleep(0.2)
        finally:
            stop_worker(worker)
            log_file.seek(0)
            worker_log = log_file.read()

    run.refresh_from_db()
    assert run.status == RetentionRun.Status.SUCCEEDED, f"statuses seen: {seen}\n--- worker log ---\n{worker_log}"
    assert seen[0] == "queued" and seen[-1] == "succeeded"
    assert (run.readings_deleted, run.attempts) == (2, 1)
    assert reading_times(tenant.pk) == [now - timedelta(days=1)]
    assert "Task retention.run_execute[" in worker_log
