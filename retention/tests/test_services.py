from datetime import timedelta
from uuid import uuid4

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from core.caller import Caller
from retention import services
from retention.models import RetentionRun
from retention.services import RetentionRunBusy, retention_run_execute, retention_run_request
from retention.tests.factories import RetentionRunFactory
from retention.tests.helpers import NOW, heartbeat_times, reading_times
from telemetry.models import SensorReading
from telemetry.tests.factories import MachineFactory, SensorFactory

pytestmark = pytest.mark.django_db

Status = RetentionRun.Status
Trigger = RetentionRun.Trigger
US = timedelta(microseconds=1)
# The `tenant` fixture is on the professional tier: 90 days.
CUTOFF = NOW - timedelta(days=90)


def run_now(tenant, **kwargs) -> RetentionRun:
    run, created = retention_run_request(by=Caller.system(tenant_id=tenant.pk), trigger=Trigger.MANUAL, **kwargs)
    assert created
    return retention_run_execute(run_id=run.pk)


def days_ago(*days: int) -> list:
    return [NOW - timedelta(days=d) for d in days]


@pytest.mark.usefixtures("frozen_now")
class TestCutoff:
    def test_reading_exactly_at_the_cutoff_is_kept_older_ones_go(self, tenant, sensor, add_readings):
        add_readings(sensor, [CUTOFF - US, CUTOFF, CUTOFF + US])

        run = run_now(tenant)

        assert run.status == Status.SUCCEEDED
        assert run.cutoff == CUTOFF
        assert run.retention_days == 90
        assert run.readings_deleted == 1
        assert reading_times(tenant.pk) == [CUTOFF, CUTOFF + US]

    def test_heartbeats_follow_the_same_boundary(self, tenant, api_key, add_heartbeats):
        add_heartbeats(api_key.api_key, [CUTOFF - US, CUTOFF, CUTOFF + US])

        run = run_now(tenant)

        assert run.heartbeats_deleted == 1
        assert run.rows_deleted == 1
        assert heartbeat_times(tenant.pk) == [CUTOFF, CUTOFF + US]

    def test_window_is_the_tenants_tier(self, tenant, sensor, add_readings):
        tenant.tier = "free"
        tenant.save()
        add_readings(sensor, days_ago(8, 7, 6))

        run = run_now(tenant)

        assert (run.retention_days, run.cutoff) == (7, NOW - timedelta(days=7))
        assert reading_times(tenant.pk) == days_ago(7, 6)

    def test_other_tenants_are_untouched(self, tenant, other_tenant, sensor, other_sensor, add_readings):
        add_readings(sensor, days_ago(200, 1))
        add_readings(other_sensor, days_ago(300, 200, 1))

        run_now(tenant)

        assert reading_times(tenant.pk) == days_ago(1)
        assert reading_times(other_tenant.pk) == days_ago(300, 200, 1)

    def test_unknown_tier_fails_the_run_and_deletes_nothing(self, tenant, sensor, add_readings, settings):
        add_readings(sensor, days_ago(400))
        settings.HALTLESS_TIERS = {"free": 7}

        run, _ = retention_run_request(by=Caller.system(tenant_id=tenant.pk), trigger=Trigger.MANUAL)
        assert retention_run_execute(run_id=run.pk) is None

        run.refresh_from_db()
        assert run.status == Status.FAILED
        assert run.error == "Tenant tier 'professional' has no retention window configured."
        assert run.cutoff is None
        assert reading_times(tenant.pk) == days_ago(400)
        event = AuditEvent.objects.get(action="retention.run_failed")
        assert event.changes == {"error": "Tenant tier 'professional' has no retention window configured."}


@pytest.mark.usefixtures("frozen_now")
class TestBatches:
    def test_all_expired_rows_go_in_bounded_batches(self, tenant, sensor, add_readings, settings, monkeypatch):
        settings.RETENTION_BATCH_SIZE = 3
        add_readings(sensor, days_ago(*range(100, 110), 1))
        batch_sizes = []
        real_batch = services._delete_batch

        def counting_batch(**kwargs):
            deleted, boundary = real_batch(**kwargs)
            batch_sizes.append(deleted)
            return deleted, boundary

        monkeypatch.setattr(services, "_delete_batch", counting_batch)

        run = run_now(tenant)

        # 3 + 3 + 3 + the last, partial one; then one (empty) batch of heartbeats.
        assert batch_sizes == [3, 3, 3, 1, 0]
        assert run.readings_deleted == 10
        assert reading_times(tenant.pk) == days_ago(1)

    def test_rows_sharing_a_timestamp_never_stall_a_batch(self, tenant, add_readings, settings):
        settings.RETENTION_BATCH_SIZE = 2
        machine = MachineFactory(tenant=tenant)
        same_time = NOW - timedelta(days=100)
        for _ in range(5):
            add_readings(SensorFactory(machine=machine), [same_time, NOW])

        run = run_now(tenant)

        assert run.readings_deleted == 5
        assert reading_times(tenant.pk) == [NOW] * 5

    def test_deletes_are_index_ranges_not_id_lists_or_loaded_rows(self, tenant, sensor, add_readings, settings):
        settings.RETENTION_BATCH_SIZE = 2
        add_readings(sensor, days_ago(100, 101, 102, 103, 104))

        with CaptureQueriesContext(connection) as queries:
            run_now(tenant)

        table = SensorReading._meta.db_table
        on_readings = [q["sql"] for q in queries.captured_queries if f'"{table}"' in q["sql"]]
        deletes = [sql for sql in on_readings if sql.startswith("DELETE")]
        assert len(deletes) == 3
        assert all(" IN (" not in sql and '"ts" < ' in sql for sql in deletes)
        # Reads of the table fetch one boundary timestamp, never whole rows (besides
        # the rollups' look at the highest id, before any delete).
        reads = [sql for sql in on_readings if sql.startswith("SELECT") and not sql.startswith("SELECT MAX(id)")]
        assert len(reads) == 3
        assert all(sql.startswith(f'SELECT "ts" FROM "{table}" WHERE ') and "LIMIT 1 OFFSET" in sql for sql in reads)

    def test_interrupted_run_keeps_whole_batches_and_the_next_run_finishes(
        self, tenant, sensor, add_readings, settings, monkeypatch
    ):
        settings.RETENTION_BATCH_SIZE = 3
        expired = days_ago(*range(107, 99, -1))  # 8 expired readings, oldest first
        add_readings(sensor, [*expired, NOW])
        real_progress = services._record_progress
        calls = []

        def crash_in_second_batch(**kwargs):
            calls.append(kwargs)
            if len(calls) == 2:
                raise RuntimeError("worker killed")
            real_progress(**kwargs)

        monkeypatch.setattr(services, "_record_progress", crash_in_second_batch)

        first = run_now(tenant)

        # The second batch's DELETE ran, then the crash rolled it back whole.
        assert first.status == Status.FAILED
        assert first.error == "RuntimeError: worker killed"
        assert first.readings_deleted == 3
        assert first.finished_at == NOW
        assert reading_times(tenant.pk) == [*expired[3:], NOW]

        monkeypatch.setattr(services, "_record_progress", real_progress)
        second = run_now(tenant)

        assert second.status == Status.SUCCEEDED
        assert second.readings_deleted == 5
        assert reading_times(tenant.pk) == [NOW]

    def test_a_run_taken_over_by_another_worker_stops_without_committing(
        self, tenant, sensor, add_readings, settings, monkeypatch
    ):
        settings.RETENTION_BATCH_SIZE = 2
        add_readings(sensor, days_ago(100, 101, 102, 103))
        real_batch = services._delete_batch
        batches = []

        def take_over_after_first_batch(**kwargs):
            if batches:
                RetentionRun.objects.filter(pk=kwargs["run_id"]).update(execution_token=uuid4())
            batches.append(kwargs)
            return real_batch(**kwargs)

        monkeypatch.setattr(services, "_delete_batch", take_over_after_first_batch)
        run, _ = retention_run_request(by=Caller.system(tenant_id=tenant.pk), trigger=Trigger.MANUAL)

        assert retention_run_execute(run_id=run.pk) is None

        # The second batch's DELETE was rolled back with its refused progress update.
        assert len(batches) == 2
        run.refresh_from_db()
        assert run.status == Status.RUNNING
        assert run.readings_deleted == 2
        assert len(reading_times(tenant.pk)) == 2


@pytest.mark.usefixtures("frozen_now")
class TestRequest:
    def test_creates_a_queued_run_and_audits_who_asked(self, tenant, admin_user):
        run, created = retention_run_request(by=Caller.acting(admin_user, client_ip="10.0.0.7"), trigger=Trigger.MANUAL)

        assert created
        assert (run.status, run.trigger, run.requested_by, run.cutoff) == (
            Status.QUEUED,
            Trigger.MANUAL,
            admin_user,
            None,
        )
        event = AuditEvent.objects.get(action="retention.run_requested")
        assert (event.tenant_id, event.actor_id, event.target_id, event.client_ip) == (
            tenant.pk,
            admin_user.pk,
            str(run.pk),
            "10.0.0.7",
        )
        assert event.changes == {"trigger": "manual"}

    @pytest.mark.parametrize("active", [Status.QUEUED, Status.RUNNING])
    def test_an_active_run_is_returned_instead_of_a_second(self, tenant, active):
        existing = RetentionRunFactory(tenant=tenant, status=active, created_at=NOW, updated_at=NOW)

        run, created = retention_run_request(by=Caller.system(tenant_id=tenant.pk), trigger=Trigger.SCHEDULE)

        assert (run, created) == (existing, False)
        assert RetentionRun.objects.count() == 1

    def test_finished_runs_do_not_block_a_new_one(self, tenant):
        RetentionRunFactory(tenant=tenant, status=Status.SUCCEEDED)
        RetentionRunFactory(tenant=tenant, status=Status.FAILED)

        run, created = retention_run_request(by=Caller.system(tenant_id=tenant.pk), trigger=Trigger.MANUAL)

        assert created and run.status == Status.QUEUED

    def test_losing_the_insert_race_returns_the_winners_run(self, tenant, monkeypatch):
        # Another request inserts its run right after this one looked for an active run.
        winner = RetentionRunFactory(tenant=tenant, status=Status.QUEUED, created_at=NOW, updated_at=NOW)
        real_active_run = services._active_run
        looks = []

        def look_too_early(**kwargs):
            looks.append(kwargs)
            return None if len(looks) == 1 else real_active_run(**kwargs)

        monkeypatch.setattr(services, "_active_run", look_too_early)

        run, created = retention_run_request(by=Caller.system(tenant_id=tenant.pk), trigger=Trigger.MANUAL)

        assert (run, created) == (winner, False)
        assert len(looks) == 2
        assert RetentionRun.objects.count() == 1
        assert not AuditEvent.objects.filter(action="retention.run_requested").exists()

    def test_the_database_refuses_two_active_runs_of_one_tenant(self, tenant, other_tenant):
        RetentionRunFactory(tenant=tenant, status=Status.QUEUED)
        RetentionRunFactory(tenant=other_tenant, status=Status.RUNNING)  # another tenant: fine
        RetentionRunFactory(tenant=tenant, status=Status.SUCCEEDED)  # finished: fine

        with pytest.raises(IntegrityError):
            RetentionRunFactory(tenant=tenant, status=Status.RUNNING)

    @pytest.mark.parametrize(
        ("status", "age", "field"),
        [(Status.QUEUED, timedelta(hours=7), "created_at"), (Status.RUNNING, timedelta(minutes=11), "updated_at")],
    )
    def test_an_active_run_presumed_lost_is_failed_and_replaced(self, tenant, status, age, field):
        lost = RetentionRunFactory(tenant=tenant, status=status, **{field: NOW - age})

        run, created = retention_run_request(by=Caller.system(tenant_id=tenant.pk), trigger=Trigger.MANUAL)

        assert created and run.pk != lost.pk
        lost.refresh_from_db()
        assert lost.status == Status.FAILED
        assert lost.error.startswith(f"Abandoned: no progress while {status} since ")
        assert AuditEvent.objects.filter(action="retention.run_abandoned", target_id=str(lost.pk)).exists()


@pytest.mark.usefixtures("frozen_now")
class TestExecute:
    def test_success_records_times_counts_and_an_audit_event(
        self, tenant, sensor, api_key, add_readings, add_heartbeats
    ):
        add_readings(sensor, days_ago(95, 91, 89))
        add_heartbeats(api_key.api_key, days_ago(100))

        run = run_now(tenant)

        assert (run.status, run.started_at, run.finished_at, run.attempts, run.error) == (
            Status.SUCCEEDED,
            NOW,
            NOW,
            1,
            "",
        )
        assert (run.readings_deleted, run.heartbeats_deleted) == (2, 1)
        assert run.execution_token is None
        event = AuditEvent.objects.get(action="retention.run_succeeded")
        assert event.actor_type == AuditEvent.ActorType.SYSTEM
        assert event.changes == {"cutoff": CUTOFF.isoformat(), "readings_deleted": 2, "heartbeats_deleted": 1}

    def test_an_unexpected_error_fails_the_run_with_its_message(self, tenant, sensor, add_readings, monkeypatch):
        add_readings(sensor, days_ago(100))

        def broken(**kwargs):
            raise ValueError("disk on fire")

        monkeypatch.setattr(services, "_delete_batch", broken)

        run = run_now(tenant)

        assert (run.status, run.error, run.finished_at) == (Status.FAILED, "ValueError: disk on fire", NOW)
        assert reading_times(tenant.pk) == days_ago(100)
        event = AuditEvent.objects.get(action="retention.run_failed")
        assert event.changes["error"] == "ValueError: disk on fire"

    @pytest.mark.parametrize("finished", [Status.SUCCEEDED, Status.FAILED])
    def test_a_finished_run_is_not_run_again(self, tenant, sensor, add_readings, finished):
        add_readings(sensor, days_ago(100))
        run = RetentionRunFactory(tenant=tenant, status=finished)

        assert retention_run_execute(run_id=run.pk) is None
        assert reading_times(tenant.pk) == days_ago(100)

    def test_an_unknown_run_is_ignored(self, db):
        assert retention_run_execute(run_id="00000000-0000-0000-0000-000000000000") is None

    def test_a_run_still_making_progress_elsewhere_is_busy(self, tenant):
        run = RetentionRunFactory(tenant=tenant, status=Status.RUNNING, updated_at=NOW - timedelta(seconds=5))

        with pytest.raises(RetentionRunBusy):
            retention_run_execute(run_id=run.pk)

    def test_a_run_whose_worker_died_resumes_with_its_original_cutoff(self, tenant, sensor, add_readings):
        original_cutoff = NOW - timedelta(days=95)
        add_readings(sensor, days_ago(100, 92))
        run = RetentionRunFactory(
            tenant=tenant,
            status=Status.RUNNING,
            cutoff=original_cutoff,
            retention_days=90,
            started_at=NOW - timedelta(hours=1),
            updated_at=NOW - timedelta(minutes=30),
            attempts=1,
            readings_deleted=7,
        )

        resumed = retention_run_execute(run_id=run.pk)

        assert (resumed.status, resumed.cutoff, resumed.attempts) == (Status.SUCCEEDED, original_cutoff, 2)
        assert resumed.started_at == NOW - timedelta(hours=1)
        assert resumed.readings_deleted == 8
        assert reading_times(tenant.pk) == days_ago(92)
