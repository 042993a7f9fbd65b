"""What only PostgreSQL can show: the plans of the hot queries."""

import re
from datetime import timedelta

import pytest
from django.db import connection

from haltless.testing import T0
from telemetry import selectors
from telemetry.services import readings_bulk_insert

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def plan_of(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        # Tiny test tables make a sequential scan cheapest; forbid it (and sorting) to see
        # whether the index alone can answer, as it must on a big table.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture
def sensor(machine):
    sensor = machine.sensors.get(key="bearing_temp")
    readings_bulk_insert(tenant_id=machine.tenant_id, rows=[(sensor.pk, T0, 1.0)])
    return sensor


# The (sensor, ts, tenant) unique index: the parent's name, or each partition's on a partitioned
# table (<table>_<partition>_sensor_id_ts_tenant_id_key), which readings are on PostgreSQL.
SENSOR_TS_INDEX = (
    r"(?:telemetry_reading_sensor_ts_tenant_unique|telemetry_sensorreading_\w+_sensor_id_ts_tenant_id_key)"
)


def backward_walks(plan: str) -> int:
    return len(re.findall(rf"Index Scan Backward using {SENSOR_TS_INDEX} ", plan))


def sort_nodes(plan: str) -> int:
    return len(re.findall(r"(?:^|->  )(?:Incremental )?Sort  \(", plan, flags=re.MULTILINE))


def partitions_scanned() -> int:
    from telemetry.partitions import is_partitioned, partition_list

    return len(partition_list()) if is_partitioned() else 1


class TestPlans:
    def test_newest_readings_of_one_sensor_walk_the_unique_index_backwards(self, sensor):
        # What the readings endpoint's cursor paginator asks for.
        queryset = selectors.reading_list(sensor_ids=[sensor.pk], since=T0).order_by("-ts", "-sensor_id")[:101]
        plan = plan_of(queryset)
        # Each partition's walk is one bounded index scan; a Merge Append keeps them in order.
        assert backward_walks(plan) == partitions_scanned()
        assert "Seq Scan" not in plan
        assert sort_nodes(plan) == 0

    def test_the_aggregate_reads_one_sensors_range_from_the_index(self, sensor):
        rows = selectors.SensorReading.objects.filter(sensor_id=sensor.pk, ts__gte=T0, ts__lt=T0 + timedelta(hours=1))
        plan = plan_of(rows)
        # An index scan, or a bitmap scan of the same index when the planner expects few rows.
        assert re.search(rf"(?:Index Scan using|Bitmap Index Scan on) {SENSOR_TS_INDEX} ", plan), plan
        assert "Seq Scan" not in plan

    def test_the_aggregate_groups_the_range_without_sorting_it(self, sensor):
        # The endpoint's own SQL, planned with every method allowed (no enable_sort = off, which
        # would hide the sort this is about) on fresh statistics of enough rows that sorting them
        # is a plan the planner weighs: it used to sort the whole range by bucket, then group.
        start = T0 + timedelta(days=1)
        minutes = 6_000
        # The machine's other sensors report over the same range (as they do): the sensor's
        # index picks its rows out, the tenant's (tenant_id, ts) index would read them all.
        readings_bulk_insert(
            tenant_id=sensor.machine.tenant_id,
            rows=[
                (each.pk, start + timedelta(minutes=m), float(m % 50))
                for each in sensor.machine.sensors.all()
                for m in range(minutes)
            ],
        )
        sql, params = selectors._aggregate_sql(
            sensor_id=sensor.pk,
            kind=sensor.kind,
            bucket_seconds=selectors.BUCKETS["1h"],
            since=start,
            until=start + timedelta(minutes=minutes),
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE telemetry_sensorreading")
            # A table this small is cheapest to read whole; on a big one only the index can answer.
            cursor.execute("SET LOCAL enable_seqscan = off")
            # Memory as tight as it gets: a hash table the planner believed as big as the range
            # (one group per timestamp, its estimate for a plain GROUP BY of an expression of ts)
            # would not fit, and it would sort instead; the subquery keeps the estimate small.
            cursor.execute("SET LOCAL work_mem = '64kB'")
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert sort_nodes(plan) == 0, plan
        assert plan.lstrip().startswith("HashAggregate"), plan
        assert re.search(rf"(?:Index Scan using|Bitmap Index Scan on) {SENSOR_TS_INDEX} ", plan), plan
        assert "Seq Scan" not in plan
        # And the answer is whole and in order: 100 hours of 60 readings.
        buckets = selectors.reading_aggregates(
            sensor_id=sensor.pk,
            kind=sensor.kind,
            bucket_seconds=3600,
            since=start,
            until=start + timedelta(minutes=minutes),
        )
        assert [b.start for b in buckets] == [start + timedelta(hours=h) for h in range(100)]
        assert {b.count for b in buckets} == {60}

    def test_a_machine_wide_page_walks_each_sensors_index_with_a_limit(self, machine):
        from telemetry.selectors import ReadingWindow, _merged_sql, _reading_page_parts

        sensors = list(machine.sensors.values_list("pk", flat=True))
        window = ReadingWindow(sensor_ids=tuple(sensors))
        parts = _reading_page_parts(window=window, limit=101, after=(T0, sensors[0]), newer=False)
        sql, params = _merged_sql(parts, limit=101, newer=False)
        with connection.cursor() as cursor:
            for setting in ("enable_seqscan", "enable_bitmapscan"):
                cursor.execute(f"SET LOCAL {setting} = off")
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        # One bounded backward walk per sensor; only the merged page (sensors x limit) is sorted.
        # Per sensor, one walk per partition the range reaches (pruned by `ts <= T0`).
        walks = backward_walks(plan)
        assert walks >= len(sensors) and walks % len(sensors) == 0
        assert walks == len(re.findall(r"Scan", plan))
        assert plan.count("Limit") == len(sensors) + 1
        assert sort_nodes(plan) <= 1
