"""Retention's partition maintenance on PostgreSQL: whole expired partitions dropped (retention.partitions)."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.caller import Caller
from haltless.testing import READINGS_TABLE, midnight, partition_name_for, readings_of
from retention import partitions as partition_drops
from retention.models import RetentionHold, RetentionRun
from retention.services import retention_run_execute, retention_run_request
from telemetry import partitions
from telemetry.models import SensorReading, SensorRollup
from telemetry.tests.factories import MachineFactory, SensorFactory
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def tenant_with_sensor(tier: str, external_id: str = "m-1"):
    tenant = TenantFactory(tier=tier)
    return tenant, SensorFactory(machine=MachineFactory(tenant=tenant, external_id=external_id))


def partition_drop_expired_logged(caplog):
    with caplog.at_level("WARNING", logger="retention.partitions"):
        return partition_drops.partition_drop_expired()


class TestPartitionDrops:
    """Only the maintenance job drops whole partitions, and only when every row may go."""

    @pytest.fixture
    def old_day(self):
        day = midnight(400)
        partitions.partitions_ensure(since=day, through=day)
        return day

    def test_an_all_expired_partition_is_dropped_and_recorded_per_tenant(self, old_day):
        free, free_sensor = tenant_with_sensor("free")
        pro, pro_sensor = tenant_with_sensor("professional")
        readings_of(free_sensor, [old_day + timedelta(hours=h) for h in range(3)])
        readings_of(pro_sensor, [old_day + timedelta(hours=5)])

        dropped = partition_drops.partition_drop_expired()

        assert [d.name for d in dropped] == [partition_name_for(old_day)]
        assert dropped[0].rows_by_tenant == {free.pk: 3, pro.pk: 1}
        assert SensorReading.objects.count() == 0
        runs = {run.tenant_id: run for run in RetentionRun.objects.filter(trigger="maintenance")}
        assert {t: (r.status, r.readings_deleted, r.partitions_dropped) for t, r in runs.items()} == {
            free.pk: ("succeeded", 3, 1),
            pro.pk: ("succeeded", 1, 1),
        }
        # Their rollups were built before the rows went.
        assert SensorRollup.objects.filter(bucket=3600, sensor=free_sensor).count() == 3

    def test_the_operators_command_drops_and_the_tenant_admin_sees_the_run(
        self, old_day, tenant, admin_client, other_tenant_admin_client, capsys
    ):
        sensor = SensorFactory(machine=MachineFactory(tenant=tenant, external_id="press-1"))
        readings_of(sensor, [old_day + timedelta(hours=h) for h in range(5)])

        call_command("readings_partitions", "--drop-expired")

        assert f"dropped {partition_name_for(old_day)} (5 readings)" in capsys.readouterr().out
        response = admin_client.get("/api/v1/settings/admin/retention/runs")
        assert response.status_code == 200
        (run,) = response.json()
        assert (run["trigger"], run["status"], run["readings_deleted"], run["partitions_dropped"]) == (
            "maintenance",
            "succeeded",
            5,
            1,
        )
        assert other_tenant_admin_client.get("/api/v1/settings/admin/retention/runs").json() == []

    def test_a_tenants_earlier_run_is_not_counted_again(self, old_day):
        free, free_sensor = tenant_with_sensor("free")
        enterprise, ent_sensor = tenant_with_sensor("enterprise")
        readings_of(free_sensor, [old_day + timedelta(hours=h) for h in range(4)])
        readings_of(ent_sensor, [old_day + timedelta(hours=9)])
        run, _ = retention_run_request(by=Caller.system(tenant_id=free.pk), trigger=RetentionRun.Trigger.MANUAL)
        assert retention_run_execute(run_id=run.pk).readings_deleted == 4

        (dropped,) = partition_drops.partition_drop_expired()

        assert dropped.rows_by_tenant == {enterprise.pk: 1}
        assert RetentionRun.objects.get(trigger="maintenance").readings_deleted == 1

    def test_counts_out_of_step_with_the_rows_are_counted_again(self, old_day, caplog):
        free, free_sensor = tenant_with_sensor("free")
        readings_of(free_sensor, [old_day + timedelta(hours=h) for h in range(3)])
        with connection.cursor() as cursor:  # as a bulk load with triggers off would leave them
            cursor.execute("DELETE FROM telemetry_readingdaycount")

        (dropped,) = partition_drop_expired_logged(caplog)

        assert dropped.rows_by_tenant == {free.pk: 3}
        assert RetentionRun.objects.get(trigger="maintenance").readings_deleted == 3
        assert f"readings partition {dropped.name}: day counts out of step with its rows; counting them" in (
            caplog.messages
        )

    def test_mixed_tiers_never_drop_the_enterprise_tenants_rows_in_its_window(self):
        free, free_sensor = tenant_with_sensor("free")
        enterprise, ent_sensor = tenant_with_sensor("enterprise")
        # 300 days ago: past the free tier's 7 days, inside the enterprise tier's 365.
        day = midnight(300)
        partitions.partitions_ensure(since=day, through=day)
        readings_of(free_sensor, [day + timedelta(hours=1)])
        readings_of(ent_sensor, [day + timedelta(hours=2)])

        with CaptureQueriesContext(connection) as queries:
            assert partition_drops.partition_drop_expired() == []
        assert SensorReading.objects.filter(tenant=enterprise).count() == 1
        # Ruled out at the first look, from the day counts: ingest was never locked out.
        assert not [q for q in queries.captured_queries if "LOCK TABLE" in q["sql"]]

        # The free tenant's own run deletes its row (row by row), the enterprise's stays.
        run, _ = retention_run_request(by=Caller.system(tenant_id=free.pk), trigger=RetentionRun.Trigger.MANUAL)
        assert retention_run_execute(run_id=run.pk).readings_deleted == 1
        assert SensorReading.objects.filter(tenant=enterprise).count() == 1

    def test_an_empty_partition_older_than_every_window_goes_without_a_run(self, old_day):
        (dropped,) = partition_drops.partition_drop_expired()

        assert (dropped.name, dropped.rows_by_tenant) == (partition_name_for(old_day), {})
        assert not RetentionRun.objects.exists()

    def test_a_hold_keeps_the_whole_partition(self, old_day):
        tenant, sensor = tenant_with_sensor("professional")
        readings_of(sensor, [old_day + timedelta(hours=1)])
        RetentionHold.objects.create(
            tenant=tenant, reason="claim", starts_at=old_day, ends_at=old_day + timedelta(hours=2)
        )

        assert partition_drops.partition_drop_expired() == []
        assert SensorReading.objects.count() == 1

    def test_a_partition_not_yet_in_the_rollups_stays(self, old_day, monkeypatch):
        _, sensor = tenant_with_sensor("professional")
        readings_of(sensor, [old_day + timedelta(hours=1)])
        monkeypatch.setattr(partition_drops, "rollups_build", lambda **kwargs: 0)

        assert partition_drops.partition_drop_expired() == []
        assert SensorReading.objects.count() == 1

    def test_a_drop_that_fails_changes_nothing(self, old_day, monkeypatch):
        _, sensor = tenant_with_sensor("free")
        readings_of(sensor, [old_day + timedelta(hours=1)])

        def broken(**kwargs):
            raise RuntimeError("recording failed")

        monkeypatch.setattr(partition_drops, "_record_drop", broken)
        with pytest.raises(RuntimeError):
            partition_drops.partition_drop_expired()

        assert partition_name_for(old_day) in {p.name for p in partitions.partition_list()}
        assert SensorReading.objects.count() == 1
        assert not RetentionRun.objects.exists()

    def test_every_drop_and_delete_is_tenant_bound_or_a_proven_whole_partition(self, old_day):
        free, free_sensor = tenant_with_sensor("free")
        readings_of(free_sensor, [old_day + timedelta(hours=1), midnight(30)])

        (dropped,) = [p for p in partitions.partition_list() if p.name == partition_name_for(old_day)]
        with CaptureQueriesContext(connection) as queries:
            partition_drops.partition_drop_expired()
            run, _ = retention_run_request(by=Caller.system(tenant_id=free.pk), trigger=RetentionRun.Trigger.MANUAL)
            retention_run_execute(run_id=run.pk)

        statements = [q["sql"] for q in queries.captured_queries]
        drops = [
            s for s in statements if (s.startswith(("DROP", "ALTER TABLE")) and "DETACH" in s) or s.startswith("DROP")
        ]
        counts = 'DELETE FROM "telemetry_readingdaycount"'
        deletes = [s for s in statements if s.startswith("DELETE") and not s.startswith(counts)]
        # The dropped partition's day counts go with it: its days, all of them, nothing else.
        week = (dropped.start.date(), dropped.end.date())
        assert [s for s in statements if s.startswith(counts)] == [
            f'{counts} WHERE ("telemetry_readingdaycount"."day" >= \'{week[0]}\'::date '
            f'AND "telemetry_readingdaycount"."day" < \'{week[1]}\'::date)'
        ]
        assert drops == [
            f'ALTER TABLE "{READINGS_TABLE}" DETACH PARTITION "{partition_name_for(old_day)}"',
            f'DROP TABLE "{partition_name_for(old_day)}"',
        ]
        # The drop came after its checks, under the lock: every tenant's newest row past its window.
        lock_at = next(i for i, s in enumerate(statements) if "LOCK TABLE" in s)
        checks = [s for s in statements[lock_at:] if "(SELECT max(ts) FROM" in s]
        assert checks and statements.index(drops[0]) > lock_at
        assert deletes and all('"tenant_id" = ' in s and free.pk.hex in s.replace("-", "") for s in deletes)
        assert SensorReading.objects.count() == 0

    def test_the_daily_job_drops_before_the_tenant_runs(self, old_day, settings):
        from retention.tasks import retention_schedule_all

        tenant, sensor = tenant_with_sensor("free")
        readings_of(sensor, [old_day + timedelta(hours=1)])
        settings.CELERY_TASK_ALWAYS_EAGER = True

        retention_schedule_all()

        triggers = sorted(RetentionRun.objects.filter(tenant=tenant).values_list("trigger", flat=True))
        assert triggers == ["maintenance", "schedule"]
        assert SensorReading.objects.count() == 0
