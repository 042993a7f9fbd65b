"""Rollups: 1-hour and 1-day min, max, sum and count per sensor, built incrementally.

A pass reads the readings added since the last pass, by id (`RollupCursor`),
groups them into hour and day buckets and merges them into `SensorRollup`
(min of mins, max of maxes, sums of sums and counts): a late backfill for an
old hour lands in that hour's bucket like any other reading, and a reading is
counted exactly once because each id range is read once, in the transaction
that moves the cursor.

Ids are taken when a row is inserted but seen only when its transaction
commits, so a pass must not read past an id that a still-running ingest may
fill in below it. On PostgreSQL a pass reads the highest committed id, then
waits (briefly) for every writing transaction of the database at that moment to end; if
one does not end in time, the pass stops at the id it saw one pass earlier
(`next_through`), by which time such a transaction has long ended. SQLite has
one writer at a time, so the highest committed id is always safe.

Readings are never deleted before they are in the rollups (retention deletes
only ids at or below `built_through`), so rollups outlive the raw rows.
"""

import logging
import time

from django.db import connection, transaction
from django.utils import timezone

from telemetry.models import VALUE_BOUNDS, RollupCursor, Sensor, SensorReading, SensorRollup, value_bounds

logger = logging.getLogger(__name__)

CURSOR_NAME = "readings"
# Ids per transaction: bounds a pass's memory and lock time after a long pause or a bulk load.
CHUNK_IDS = 500_000
# How long a pass waits for in-flight ingests to commit before using the older safe id.
INFLIGHT_WAIT_SECONDS = 5.0


def _max_committed_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(id) FROM {connection.ops.quote_name(SensorReading._meta.db_table)}")  # noqa: S608
        return cursor.fetchone()[0] or 0


def _inflight_done(wait_seconds: float) -> bool:
    """Whether every transaction of this database that is writing now has ended within `wait_seconds`.

    Read from pg_stat_activity, so transactions of other databases on the server
    (which cannot write our readings) are not waited for.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(array_agg(backend_xid::text), '{}') FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
        )
        running = cursor.fetchone()[0]
        deadline = time.monotonic() + wait_seconds
        while running:
            cursor.execute(
                "SELECT coalesce(array_agg(backend_xid::text), '{}') FROM pg_stat_activity "
                "WHERE datname = current_database() AND backend_xid::text = ANY(%s) AND pid <> pg_backend_pid()",
                [running],
            )
            running = cursor.fetchone()[0]
            if not running:
                break
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
    return True


def _safe_through(cursor_row: RollupCursor, wait_seconds: float) -> int:
    seen = _max_committed_id()
    if connection.vendor != "postgresql" or _inflight_done(wait_seconds):
        return seen
    return min(seen, max(cursor_row.next_through, cursor_row.built_through))


def _bucket_sql(seconds: int) -> str:
    if connection.vendor == "postgresql":
        return f"to_timestamp(floor(extract(epoch FROM r.ts) / {seconds}) * {seconds})"
    # SQLite keeps datetimes as naive UTC text in Django's format.
    return "strftime('%%Y-%%m-%%d %%H:00:00', r.ts)" if seconds == 3600 else "strftime('%%Y-%%m-%%d 00:00:00', r.ts)"


def _clamped_value_sql(least: str, greatest: str) -> str:
    """r.value within its sensor kind's bounds (as the raw aggregates clamp), so no sum overflows."""
    low, high = value_bounds(Sensor.Kind.OTHER)
    cases = " ".join(
        f"WHEN '{kind}' THEN {least}({greatest}(r.value, {bounds[0]!r}), {bounds[1]!r})"
        for kind, bounds in VALUE_BOUNDS.items()
    )
    return f"CASE s.kind {cases} ELSE {least}({greatest}(r.value, {low!r}), {high!r}) END"


def _merge_range(low: int, high: int) -> None:
    """Add readings with low < id <= high to the rollups (inside the caller's transaction)."""
    qn = connection.ops.quote_name
    readings, rollup = qn(SensorReading._meta.db_table), qn(SensorRollup._meta.db_table)
    sensors = qn(Sensor._meta.db_table)
    least, greatest = ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
    value = _clamped_value_sql(least, greatest)
    with connection.cursor() as cursor:
        for bucket in SensorRollup.Bucket:
            seconds = int(bucket)
            start = _bucket_sql(seconds)
            cursor.execute(
                f"INSERT INTO {rollup} AS o (tenant_id, sensor_id, bucket, start, min, max, sum, count) "  # noqa: S608
                f"SELECT r.tenant_id, r.sensor_id, {seconds}, {start}, MIN({value}), MAX({value}), "
                f"SUM({value}), COUNT(*) FROM {readings} AS r JOIN {sensors} AS s ON s.id = r.sensor_id "
                "WHERE r.id > %s AND r.id <= %s AND r.value IS NOT NULL "
                f"GROUP BY r.tenant_id, r.sensor_id, {start} "
                "ON CONFLICT (tenant_id, sensor_id, bucket, start) DO UPDATE SET "
                f"min = {least}(o.min, excluded.min), max = {greatest}(o.max, excluded.max), "
                "sum = o.sum + excluded.sum, count = o.count + excluded.count",
                [low, high],
            )


def rollups_build(*, wait_seconds: float = INFLIGHT_WAIT_SECONDS) -> int:
    """Bring the rollups up to date; returns `built_through` (every reading with id <= it is rolled up).

    Passes are serialised by the cursor row's lock, so two workers never read the same range.
    """
    current = RollupCursor.objects.filter(name=CURSOR_NAME).first()
    if current is None:
        RollupCursor.objects.get_or_create(name=CURSOR_NAME)
    elif current.built_through >= _max_committed_id():
        return current.built_through  # up to date: two reads, no lock
    while True:
        with transaction.atomic():
            row = RollupCursor.objects.select_for_update().get(name=CURSOR_NAME)
            through = _safe_through(row, wait_seconds)
            if through <= row.built_through:
                RollupCursor.objects.filter(pk=row.pk).update(next_through=max(row.next_through, through))
                return row.built_through
            high = min(through, row.built_through + CHUNK_IDS)
            _merge_range(row.built_through, high)
            RollupCursor.objects.filter(pk=row.pk).update(
                built_through=high, next_through=max(row.next_through, _max_committed_id()), updated_at=timezone.now()
            )
            if high >= through:
                logger.info("rollups built through reading id %s", high)
                return high
