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


def day_counts() -> dict:
    """The trigger-kept counts, summed over their slots (zero sums left out)."""
    return {
        (tenant_id, day): rows
        for tenant_id, day, rows in catalog(
            "SELECT tenant_id, day, sum(rows) FROM telemetry_readingdaycount GROUP BY 1, 2 HAVING sum(rows) <> 0"
        )
    }


def counted_rows() -> dict:
    """The same, counted from the readings themselves."""
    return {
        (tenant_id, day): rows
        for tenant_id, day, rows in catalog(
            f"SELECT tenant_id, (ts AT TIME ZONE 'UTC')::date, count(*) FROM \"{READINGS_TABLE}\" GROUP BY 1, 2"
        )
    }


class TestReadingDayCounts:
    """Every write of the readings, whoever makes it, keeps the per-tenant day counts a drop records."""

    def test_ingest_resends_deletes_moves_and_updates_keep_them_exact(self, tenant, other_tenant):
        machine = MachineFactory(tenant=tenant, external_id="press-1")
        SensorFactory(machine=machine, key="temp")
        doomed = SensorFactory(machine=machine, key="doomed")
        theirs = SensorFactory(machine=MachineFactory(tenant=other_tenant, external_id="press-1"), key="temp")
        now = timezone.now().replace(microsecond=0)
        old = midnight(3000)  # the default partition
        by = Caller.system(tenant_id=tenant.pk)

        def batch(*pairs):
            return [{"machine": "press-1", "sensor": key, "ts": ts.isoformat(), "value": 1.0} for key, ts in pairs]

        readings_ingest(by=by, readings=batch(("temp", now), ("temp", old), ("doomed", now - timedelta(days=1))))
        # A resend with one new reading: the COPY fails, the INSERT ... ON CONFLICT adds only the new one.
        readings_ingest(by=by, readings=batch(("temp", now), ("temp", now - timedelta(hours=30))))
        readings_of(theirs, [now, now - timedelta(days=2)])
        assert day_counts() == counted_rows()
        assert sum(day_counts().values()) == 6

        doomed.delete()  # its readings go by the sensor's trigger
        partitions.partitions_ensure(since=old, through=old)  # moves the old row out of the default partition
        SensorReading.objects.filter(sensor=theirs, ts=now).update(ts=now - timedelta(days=40))
        SensorReading.objects.filter(tenant=tenant, ts=old).delete()

        assert day_counts() == counted_rows()
        assert sum(day_counts().values()) == 4

    def test_a_connection_adds_to_its_own_slot(self, sensor_of_tenant):
        readings_of(sensor_of_tenant, [midnight(1) + timedelta(minutes=m) for m in range(3)])
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid() % 16")
            (slot,) = cursor.fetchone()
        assert catalog("SELECT slot, rows FROM telemetry_readingdaycount") == [(slot, 3)]

    def test_a_rebuild_counts_a_load_made_with_triggers_off(self, sensor_of_tenant):
        readings_of(sensor_of_tenant, [midnight(1), midnight(2)])
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM telemetry_readingdaycount")

        assert partitions.reading_day_counts_rebuild() == 2
        assert day_counts() == counted_rows()

    def test_the_command_recounts(self, sensor_of_tenant, capsys):
        readings_of(sensor_of_tenant, [midnight(1), midnight(2), midnight(3)])
        with connection.cursor() as cursor:
            cursor.execute("UPDATE telemetry_readingdaycount SET rows = rows + 5")

        call_command("readings_partitions", "--recount")

        out = capsys.readouterr().out
        assert "recounted 3 readings per tenant and day" in out
        assert out.rstrip().endswith("Partitions: 0 created, 3 readings recounted.")
        assert day_counts() == counted_rows()


# Tables a distributed engine would replicate to every node (small, read on every path),
# so foreign keys into them need not carry the tenant (Citus "reference tables").
REFERENCE_TABLES = {"tenants_tenant", "telemetry_machine", "telemetry_sensor", "apikeys_apikey"}


class TestReadyForADistributedEngine:
    """The catalog, read: the tenant in every primary key, unique constraint and foreign-key path."""

    @pytest.mark.parametrize(
        "table",
        [READINGS_TABLE, SensorRollup._meta.db_table, "telemetry_agentheartbeat", "telemetry_readingdaycount"],
    )
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
