from datetime import timedelta

import pytest
from celery.exceptions import Retry

from retention import tasks
from retention.models import RetentionRun
from retention.tests.factories import RetentionRunFactory
from retention.tests.helpers import NOW, reading_times

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

Status = RetentionRun.Status


class TestExecuteTask:
    def test_is_late_acked_requeued_on_worker_loss_and_time_limited(self):
        task = tasks.retention_run_execute

        assert (task.acks_late, task.reject_on_worker_lost) == (True, True)
        assert task.soft_time_limit < task.time_limit <= 60 * 60

    def test_runs_the_service_with_the_run_id(self, tenant, sensor, add_readings):
        add_readings(sensor, [NOW - timedelta(days=100), NOW])
        run = RetentionRunFactory(tenant=tenant, status=Status.QUEUED)

        tasks.retention_run_execute.apply(args=[str(run.pk)]).get()

        run.refresh_from_db()
        assert (run.status, run.readings_deleted) == (Status.SUCCEEDED, 1)
        assert reading_times(tenant.pk) == [NOW]

    def test_a_run_busy_on_a_live_worker_is_retried_later(self, tenant, monkeypatch):
        run = RetentionRunFactory(tenant=tenant, status=Status.RUNNING, updated_at=NOW)
        retries = []

        def record_retry(**kwargs):
            retries.append(kwargs)
            return Retry()

        monkeypatch.setattr(tasks.retention_run_execute, "retry", record_retry)

        with pytest.raises(Retry):
            tasks.retention_run_execute.run(str(run.pk))

        assert retries[0]["countdown"] == 600
        run.refresh_from_db()
        assert run.status == Status.RUNNING

    def test_enqueue_sends_to_the_configured_queue_after_commit(
        self, tenant, settings, monkeypatch, django_capture_on_commit_callbacks
    ):
        settings.RETENTION_QUEUE = "retention"
        sent = []
        monkeypatch.setattr(
            tasks.retention_run_execute, "apply_async", lambda args, **options: sent.append((args, options))
        )
        run = RetentionRunFactory(tenant=tenant, status=Status.QUEUED)

        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            tasks.retention_run_enqueue(run_id=run.pk)
        assert sent == []
        callbacks[0]()

        assert sent == [([str(run.pk)], {"queue": "retention"})]


class TestDailySchedule:
    def test_beat_runs_it_daily_at_the_configured_hour(self, settings):
        entry = settings.CELERY_BEAT_SCHEDULE["retention-daily"]

        assert entry["task"] == tasks.retention_schedule_all.name
        assert entry["schedule"].hour == {settings.RETENTION_DAILY_HOUR}
        assert entry["schedule"].minute == {0}

    def test_one_run_and_one_task_per_tenant(
        self, eager_celery, tenant, other_tenant, sensor, other_sensor, add_readings, django_capture_on_commit_callbacks
    ):
        add_readings(sensor, [NOW - timedelta(days=100), NOW])
        add_readings(other_sensor, [NOW - timedelta(days=100), NOW])

        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            queued = tasks.retention_schedule_all.apply().get()

        assert queued == 2
        assert len(callbacks) == 2
        runs = RetentionRun.objects.all()
        assert sorted((r.tenant_id, r.trigger, r.status) for r in runs) == sorted(
            [(tenant.pk, "schedule", "succeeded"), (other_tenant.pk, "schedule", "succeeded")]
        )
        assert reading_times(tenant.pk) == [NOW]
        assert reading_times(other_tenant.pk) == [NOW]

    def test_a_tenant_with_an_active_run_gets_no_second_one(
        self, tenant, other_tenant, django_capture_on_commit_callbacks, monkeypatch
    ):
        active = RetentionRunFactory(tenant=tenant, status=Status.QUEUED, created_at=NOW)
        sent = []
        monkeypatch.setattr(tasks.retention_run_execute, "apply_async", lambda args, **options: sent.append(args))

        with django_capture_on_commit_callbacks(execute=True):
            queued = tasks.retention_schedule_all()

        assert queued == 1
        other_run = RetentionRun.objects.get(tenant=other_tenant)
        assert sent == [[str(other_run.pk)]]
        assert RetentionRun.objects.filter(tenant=tenant).get() == active


@pytest.mark.django_db
class TestPublishedBeforeCommit:
    def test_a_run_not_yet_visible_is_looked_for_again(self, monkeypatch):
        from celery.exceptions import Retry

        from retention import tasks

        # Published from inside the requesting transaction: the row may not be committed yet.
        with pytest.raises(Retry):
            tasks.retention_run_execute.apply(args=["00000000-0000-0000-0000-000000000001"], throw=True)
