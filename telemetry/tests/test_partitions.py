"""Readings partitioned by time on PostgreSQL: the migration, partitions ahead, and whole-partition drops."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.caller import Caller
from retention.models import RetentionHold, RetentionRun
from retention.services import retention_run_execute, retention_run_request
from telemetry import partitions
from telemetry.models import SensorReading, SensorRollup
from telemetry.services import readings_bulk_insert, readings_ingest
from telemetry.tests.factories import MachineFactory, SensorFactory
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

TABLE = SensorReading._meta.db_table


def midnight(days_ago: int) -> datetime:
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


def name_for(ts: datetime) -> str:
    """The partition whose window (READINGS_PARTITION_DAYS wide) holds `ts`."""
    return f"{TABLE}_p{partitions._window_start(ts.astimezone(UTC).date()):%Y%m%d}"


def partition_of(ts: datetime) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT tableoid::regclass::text FROM "{TABLE}" WHERE ts = %s', [ts])
        return cursor.fetchone()[0]


def catalog(sql: str, params=()) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def readings_of(sensor, times, value=1.0):
    readings_bulk_insert(tenant_id=sensor.machine.tenant_id, rows=[(sensor.pk, ts, value) for ts in times])


class TestTable:
    def test_the_parent_is_range_partitioned_on_ts_with_key_id_ts(self):
        assert catalog("SELECT relkind FROM pg_class WHERE relname = %s", [TABLE]) == [("p",)]
        assert catalog("SELECT pg_get_partkeydef(%s::regclass)", [TABLE]) == [("RANGE (ts)",)]
        constraints = dict(
            catalog(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
                [TABLE],
            )
        )
        assert constraints == {
            f"{TABLE}_pkey": "PRIMARY KEY (id, tenant_id, ts)",
            "telemetry_reading_sensor_ts_tenant_unique": "UNIQUE (sensor_id, ts, tenant_id)",
        }
        # Django keeps a single-column key (the admin and the ORM use it).
        assert SensorReading._meta.pk.name == "id"

    def test_partitions_exist_ahead_and_a_default_catches_the_rest(self):
        names = {p.name for p in partitions.partition_list()}
        for days in range(-partitions.ahead_days(), 1):
            assert name_for(midnight(days)) in names
        assert partitions.default_partition() in names

    def test_ingest_goes_to_the_days_partition_and_resending_is_a_no_op(self, tenant):
        machine = MachineFactory(tenant=tenant, external_id="press-1")
        SensorFactory(machine=machine, key="temp")
        now = timezone.now().replace(microsecond=0)
        old = midnight(3000)  # older than any partition: the default one
        body = [
            {"machine": "press-1", "sensor": "temp", "ts": now.isoformat(), "value": 1.0},
            {"machine": "press-1", "sensor": "temp", "ts": old.isoformat(), "value": 2.0},
        ]

        assert readings_ingest(by=Caller.system(tenant_id=tenant.pk), readings=body) == 2
        readings_ingest(by=Caller.system(tenant_id=tenant.pk), readings=body)

        assert SensorReading.objects.filter(tenant=tenant).count() == 2
        assert partition_of(now) == name_for(now)
        assert partition_of(old) == partitions.default_partition()

    def test_creating_a_partition_moves_its_rows_out_of_the_default(self, sensor_of_tenant):
        day = midnight(3000)
        readings_of(sensor_of_tenant, [day + timedelta(hours=1), day + timedelta(hours=2)])

        created = partitions.partitions_ensure(since=day, through=day)

        assert created == [name_for(day)]
        assert partition_of(day + timedelta(hours=1)) == created[0]
        assert SensorReading.objects.count() == 2

    def test_ensure_is_idempotent_and_the_command_lists(self, capsys):
        assert partitions.partitions_ensure() == []
        call_command("readings_partitions", "--list")
        out = capsys.readouterr().out
        assert out.startswith("created 0 partition(s)")
        assert f"{partitions.default_partition()}  DEFAULT" in out

    def test_beat_creates_partitions_hourly(self, settings):
        entry = settings.CELERY_BEAT_SCHEDULE["telemetry-partitions"]
        assert entry["task"] == "telemetry.partitions_ensure"


# Tables a distributed engine would replicate to every node (small, read on every path),
# so foreign keys into them need not carry the tenant (Citus "reference tables").
REFERENCE_TABLES = {"tenants_tenant", "telemetry_machine", "telemetry_sensor", "apikeys_apikey"}


class TestReadyForADistributedEngine:
    """The catalog, read: the tenant in every primary key, unique constraint and foreign-key path."""

    @pytest.mark.parametrize("table", [TABLE, SensorRollup._meta.db_table, "telemetry_agentheartbeat"])
    def test_every_key_carries_the_tenant(self, table):
        rows = catalog(
            "SELECT c.contype, pg_get_constraintdef(c.oid), "
            "ARRAY(SELECT a.attname::text FROM unnest(c.conkey) k JOIN pg_attribute a "
            "ON a.attrelid = c.conrelid AND a.attnum = k), c.confrelid::regclass::text "
            "FROM pg_constraint c WHERE c.conrelid = %s::regclass AND c.contype IN ('p', 'u', 'f')",
            [table],
        )
        assert any(kind == "p" for kind, *_ in rows)
        for kind, definition, columns, referenced in rows:
            if kind == "f":
                assert "tenant_id" in columns or referenced in REFERENCE_TABLES, definition
            else:
                assert "tenant_id" in columns, definition

    def test_the_readings_unique_key_is_sensor_ts_tenant(self):
        """Ingest's ON CONFLICT target (telemetry.services): the tenant last, so reads keep (sensor_id, ts)."""
        definitions = [
            d
            for (d,) in catalog(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'u'",
                [TABLE],
            )
        ]
        assert definitions == ["UNIQUE (sensor_id, ts, tenant_id)"]


@pytest.mark.django_db(transaction=True)
class TestMigrationFromOneTable:
    def test_rows_are_kept_counts_equal_and_it_reverses(self, tenant):
        sensor = SensorFactory(machine=MachineFactory(tenant=tenant))
        times = [midnight(d) + timedelta(minutes=m) for d in (400, 30, 2, 0) for m in (0, 7)]
        executor = MigrationExecutor(connection)
        executor.migrate([("telemetry", "0003_readings_without_foreign_keys")])
        try:
            assert catalog("SELECT relkind FROM pg_class WHERE relname = %s", [TABLE]) == [("r",)]
            readings_of(sensor, times, value=3.5)
            before = catalog(f'SELECT id, tenant_id, sensor_id, ts, value FROM "{TABLE}" ORDER BY id')

            executor = MigrationExecutor(connection)
            executor.loader.build_graph()
            executor.migrate([("telemetry", "0004_partition_readings")])

            after = catalog(f'SELECT id, tenant_id, sensor_id, ts, value FROM "{TABLE}" ORDER BY id')
            assert after == before
            assert len(after) == len(times)
            assert catalog("SELECT relkind FROM pg_class WHERE relname = %s", [TABLE]) == [("p",)]
            # The sequence carries on above the copied ids.
            readings_of(sensor, [midnight(0) + timedelta(hours=5)])
            assert SensorReading.objects.order_by("-id").first().id > max(row[0] for row in before)
        finally:
            executor = MigrationExecutor(connection)
            executor.loader.build_graph()
            executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
class TestTenantInTheUniqueKey:
    def test_rows_are_kept_resends_stay_no_ops_and_it_reverses(self, tenant):
        sensor = SensorFactory(machine=MachineFactory(tenant=tenant, external_id="press-1"), key="temp")
        times = [midnight(d) + timedelta(minutes=m) for d in (30, 0) for m in (0, 7)]
        executor = MigrationExecutor(connection)
        executor.migrate([("telemetry", "0006_rollup_cursor_writers")])
        try:
            with connection.cursor() as cursor:
                for ts in times:
                    cursor.execute(
                        f'INSERT INTO "{TABLE}" (tenant_id, sensor_id, ts, value) VALUES (%s, %s, %s, 1.5)',
                        [tenant.pk, sensor.pk, ts],
                    )
            before = catalog(f'SELECT id, tenant_id, sensor_id, ts, value FROM "{TABLE}" ORDER BY id')

            executor = MigrationExecutor(connection)
            executor.loader.build_graph()
            # 0007 and what follows it (ingest below runs on today's models).
            executor.migrate(executor.loader.graph.leaf_nodes())

            assert catalog(f'SELECT id, tenant_id, sensor_id, ts, value FROM "{TABLE}" ORDER BY id') == before
            # Every partition has the new key (the parent's ALTER builds one per partition).
            assert catalog(
                "SELECT count(*) FROM pg_inherits i JOIN pg_constraint c ON c.conrelid = i.inhrelid "
                "WHERE i.inhparent = %s::regclass AND c.contype = 'u' "
                "AND pg_get_constraintdef(c.oid) = 'UNIQUE (sensor_id, ts, tenant_id)'",
                [TABLE],
            ) == [(len(partitions.partition_list()),)]
            body = [{"machine": "press-1", "sensor": "temp", "ts": ts.isoformat(), "value": 9.0} for ts in times]
            assert readings_ingest(by=Caller.system(tenant_id=tenant.pk), readings=body) == len(times)
            assert catalog(f'SELECT id, tenant_id, sensor_id, ts, value FROM "{TABLE}" ORDER BY id') == before

            executor = MigrationExecutor(connection)
            executor.loader.build_graph()
            executor.migrate([("telemetry", "0006_rollup_cursor_writers")])
            assert [
                d
                for (d,) in catalog(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype = 'u'",
                    [TABLE],
                )
            ] == ["UNIQUE (sensor_id, ts)"]
        finally:
            executor = MigrationExecutor(connection)
            executor.loader.build_graph()
            executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def sensor_of_tenant(tenant):
    return SensorFactory(machine=MachineFactory(tenant=tenant, external_id="press-1"))


def tenant_with_sensor(tier: str, external_id: str = "m-1"):
    tenant = TenantFactory(tier=tier)
    return tenant, SensorFactory(machine=MachineFactory(tenant=tenant, external_id=external_id))


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

        dropped = partitions.partition_drop_expired()

        assert [d.name for d in dropped] == [name_for(old_day)]
        assert dropped[0].rows_by_tenant == {free.pk: 3, pro.pk: 1}
        assert SensorReading.objects.count() == 0
        runs = {run.tenant_id: run for run in RetentionRun.objects.filter(trigger="maintenance")}
        assert {t: (r.status, r.readings_deleted, r.partitions_dropped) for t, r in runs.items()} == {
            free.pk: ("succeeded", 3, 1),
            pro.pk: ("succeeded", 1, 1),
        }
        # Their rollups were built before the rows went.
        assert SensorRollup.objects.filter(bucket=3600, sensor=free_sensor).count() == 3

    def test_mixed_tiers_never_drop_the_enterprise_tenants_rows_in_its_window(self):
        free, free_sensor = tenant_with_sensor("free")
        enterprise, ent_sensor = tenant_with_sensor("enterprise")
        # 300 days ago: past the free tier's 7 days, inside the enterprise tier's 365.
        day = midnight(300)
        partitions.partitions_ensure(since=day, through=day)
        readings_of(free_sensor, [day + timedelta(hours=1)])
        readings_of(ent_sensor, [day + timedelta(hours=2)])

        assert partitions.partition_drop_expired() == []
        assert SensorReading.objects.filter(tenant=enterprise).count() == 1

        # The free tenant's own run deletes its row (row by row), the enterprise's stays.
        run, _ = retention_run_request(by=Caller.system(tenant_id=free.pk), trigger=RetentionRun.Trigger.MANUAL)
        assert retention_run_execute(run_id=run.pk).readings_deleted == 1
        assert SensorReading.objects.filter(tenant=enterprise).count() == 1

    def test_an_empty_partition_older_than_every_window_goes_without_a_run(self, old_day):
        (dropped,) = partitions.partition_drop_expired()

        assert (dropped.name, dropped.rows_by_tenant) == (name_for(old_day), {})
        assert not RetentionRun.objects.exists()

    def test_a_hold_keeps_the_whole_partition(self, old_day):
        tenant, sensor = tenant_with_sensor("professional")
        readings_of(sensor, [old_day + timedelta(hours=1)])
        RetentionHold.objects.create(
            tenant=tenant, reason="claim", starts_at=old_day, ends_at=old_day + timedelta(hours=2)
        )

        assert partitions.partition_drop_expired() == []
        assert SensorReading.objects.count() == 1

    def test_a_partition_not_yet_in_the_rollups_stays(self, old_day, monkeypatch):
        _, sensor = tenant_with_sensor("professional")
        readings_of(sensor, [old_day + timedelta(hours=1)])
        monkeypatch.setattr("telemetry.rollups.rollups_build", lambda **kwargs: 0)

        assert partitions.partition_drop_expired() == []
        assert SensorReading.objects.count() == 1

    def test_a_drop_that_fails_changes_nothing(self, old_day, monkeypatch):
        _, sensor = tenant_with_sensor("free")
        readings_of(sensor, [old_day + timedelta(hours=1)])

        def broken(**kwargs):
            raise RuntimeError("recording failed")

        monkeypatch.setattr(partitions, "_record_drop", broken)
        with pytest.raises(RuntimeError):
            partitions.partition_drop_expired()

        assert name_for(old_day) in {p.name for p in partitions.partition_list()}
        assert SensorReading.objects.count() == 1
        assert not RetentionRun.objects.exists()

    def test_every_drop_and_delete_is_tenant_bound_or_a_proven_whole_partition(self, old_day):
        free, free_sensor = tenant_with_sensor("free")
        readings_of(free_sensor, [old_day + timedelta(hours=1), midnight(30)])

        with CaptureQueriesContext(connection) as queries:
            partitions.partition_drop_expired()
            run, _ = retention_run_request(by=Caller.system(tenant_id=free.pk), trigger=RetentionRun.Trigger.MANUAL)
            retention_run_execute(run_id=run.pk)

        statements = [q["sql"] for q in queries.captured_queries]
        drops = [
            s for s in statements if (s.startswith(("DROP", "ALTER TABLE")) and "DETACH" in s) or s.startswith("DROP")
        ]
        deletes = [s for s in statements if s.startswith("DELETE")]
        assert drops == [
            f'ALTER TABLE "{TABLE}" DETACH PARTITION "{name_for(old_day)}"',
            f'DROP TABLE "{name_for(old_day)}"',
        ]
        # The drop came after its checks, under the lock: every tenant's newest row past its window.
        lock_at = next(i for i, s in enumerate(statements) if "LOCK TABLE" in s)
        checks = [s for s in statements[lock_at:] if s.startswith("SELECT max(ts)")]
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
