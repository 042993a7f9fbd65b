"""Readings partitioned by time on PostgreSQL: the migration, partitions ahead, and whole-partition drops."""

from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from core.caller import Caller
from haltless.testing import READINGS_TABLE, midnight, partition_name_for, readings_of
from telemetry import partitions
from telemetry.models import SensorReading, SensorRollup
from telemetry.services import readings_ingest
from telemetry.tests.factories import MachineFactory, SensorFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def partition_of(ts: datetime) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT tableoid::regclass::text FROM "{READINGS_TABLE}" WHERE ts = %s', [ts])
        return cursor.fetchone()[0]


def catalog(sql: str, params=()) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@pytest.fixture
def sensor_of_tenant(tenant):
    return SensorFactory(machine=MachineFactory(tenant=tenant, external_id="press-1"))


class TestTable:
    def test_the_parent_is_range_partitioned_on_ts_with_key_id_ts(self):
        assert catalog("SELECT relkind FROM pg_class WHERE relname = %s", [READINGS_TABLE]) == [("p",)]
        assert catalog("SELECT pg_get_partkeydef(%s::regclass)", [READINGS_TABLE]) == [("RANGE (ts)",)]
        constraints = dict(
            catalog(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
                [READINGS_TABLE],
            )
        )
        assert constraints == {
            f"{READINGS_TABLE}_pkey": "PRIMARY KEY (id, tenant_id, ts)",
            "telemetry_reading_sensor_ts_tenant_unique": "UNIQUE (sensor_id, ts, tenant_id)",
        }
        # Django keeps a single-column key (the admin and the ORM use it).
        assert SensorReading._meta.pk.name == "id"

    def test_partitions_exist_ahead_and_a_default_catches_the_rest(self):
        names = {p.name for p in partitions.partition_list()}
        for days in range(-partitions.ahead_days(), 1):
            assert partition_name_for(midnight(days)) in names
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
        assert partition_of(now) == partition_name_for(now)
        assert partition_of(old) == partitions.default_partition()

    def test_creating_a_partition_moves_its_rows_out_of_the_default(self, sensor_of_tenant):
        day = midnight(3000)
        readings_of(sensor_of_tenant, [day + timedelta(hours=1), day + timedelta(hours=2)])

        created = partitions.partitions_ensure(since=day, through=day)

        assert created == [partition_name_for(day)]
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

    @pytest.mark.parametrize("table", [READINGS_TABLE, SensorRollup._meta.db_table, "telemetry_agentheartbeat"])
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
                [READINGS_TABLE],
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
            assert catalog("SELECT relkind FROM pg_class WHERE relname = %s", [READINGS_TABLE]) == [("r",)]
            readings_of(sensor, times, value=3.5)
            before = catalog(f'SELECT id, tenant_id, sensor_id, ts, value FROM "{READINGS_TABLE}" ORDER BY id')

            executor = MigrationExecutor(connection)
            executor.loader.build_graph()
            executor.migrate([("telemetry", "0004_partition_readings")])

            after = catalog(f'SELECT id, tenant_id, sensor_id, ts, value FROM "{READINGS_TABLE}" ORDER BY id')
            assert after == before
            assert len(after) == len(times)
            assert catalog("SELECT relkind FROM pg_class WHERE relname = %s", [READINGS_TABLE]) == [("p",)]
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
                        f'INSERT INTO "{READINGS_TABLE}" (tenant_id, sensor_id, ts, value) VALUES (%s, %s, %s, 1.5)',
                        [tenant.pk, sensor.pk, ts],
                    )
            before = catalog(f'SELECT id, tenant_id, sensor_id, ts, value FROM "{READINGS_TABLE}" ORDER BY id')

            executor = MigrationExecutor(connection)
            executor.loader.build_graph()
            # 0007 and what follows it (ingest below runs on today's models).
            executor.migrate(executor.loader.graph.leaf_nodes())

            assert catalog(f'SELECT id, tenant_id, sensor_id, ts, value FROM "{READINGS_TABLE}" ORDER BY id') == before
            # Every partition has the new key (the parent's ALTER builds one per partition).
            assert catalog(
                "SELECT count(*) FROM pg_inherits i JOIN pg_constraint c ON c.conrelid = i.inhrelid "
                "WHERE i.inhparent = %s::regclass AND c.contype = 'u' "
                "AND pg_get_constraintdef(c.oid) = 'UNIQUE (sensor_id, ts, tenant_id)'",
                [READINGS_TABLE],
            ) == [(len(partitions.partition_list()),)]
            body = [{"machine": "press-1", "sensor": "temp", "ts": ts.isoformat(), "value": 9.0} for ts in times]
            assert readings_ingest(by=Caller.system(tenant_id=tenant.pk), readings=body) == len(times)
            assert catalog(f'SELECT id, tenant_id, sensor_id, ts, value FROM "{READINGS_TABLE}" ORDER BY id') == before

            executor = MigrationExecutor(connection)
            executor.loader.build_graph()
            executor.migrate([("telemetry", "0006_rollup_cursor_writers")])
            assert [
                d
                for (d,) in catalog(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype = 'u'",
                    [READINGS_TABLE],
                )
            ] == ["UNIQUE (sensor_id, ts)"]
        finally:
            executor = MigrationExecutor(connection)
            executor.loader.build_graph()
            executor.migrate(executor.loader.graph.leaf_nodes())
