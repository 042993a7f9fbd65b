"""Rollups: 1-hour and 1-day min, max, sum and count per sensor, built incrementally.

A pass reads the readings added since the last pass, by id (`RollupCursor`),
groups them into hour and day buckets and merges them into `SensorRollup`
(min of mins, max of maxes, sums of sums and counts): a late backfill for an
old hour lands in that hour's bucket like any other reading, and a reading is
counted exactly once because each id range is read once, in the transaction
that moves the cursor.

Ids are taken when a row is inserted but seen only when its transaction
commits, so a pass must not read past an id that a still-running ingest may
fill in below it. On PostgreSQL a pass never waits for one: it reads the highest
committed id and then the writing transactions of this database running at that
moment (`pg_stat_activity.backend_xid`; other databases' cannot write our
readings). With none, that id is safe at once. Otherwise it becomes the
candidate for a later pass (`next_through`, with those writers in `next_xids`),
which reads up to it once every one of them has ended (committed or not), and
meanwhile the pass reads up to the previous candidate if its writers are gone,
or nothing new. A busy server thus costs a pass one pass of lag, never a wait
(`wait_seconds` > 0 allows a bounded one, polled). Two passes never wait for each
other either: the cursor row is locked with SKIP LOCKED, and a pass that finds
it locked returns at once. (A writer that has taken an id but not yet written
its first row has no xid yet: the gap between the two is one function call
inside the INSERT or COPY, and the previous wait-based rule had the same one.)
SQLite has one writer at a time, so the highest committed id is always safe.

Readings are never deleted before they are in the rollups (retention deletes
only ids at or below `built_through`), so rollups outlive the raw rows.
"""

import logging
import time
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from telemetry.models import VALUE_BOUNDS, RollupCursor, Sensor, SensorReading, SensorRollup, value_bounds

logger = logging.getLogger(__name__)

CURSOR_NAME = "readings"
# Ids per transaction: bounds a pass's memory and lock time after a long pause or a bulk load.
CHUNK_IDS = 500_000
# A pass does not wait for in-flight ingests (see above); callers may allow a bounded wait.
INFLIGHT_WAIT_SECONDS = 0.0
_POLL_SECONDS = 0.05


def _max_committed_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(id) FROM {connection.ops.quote_name(SensorReading._meta.db_table)}")  # noqa: S608
        return cursor.fetchone()[0] or 0


def _writers_now() -> set[str]:
    """Xids of the other transactions writing readings now, read afresh (not the transaction's
    cached copy of pg_stat_activity, which would be as old as its first read).

    Only writers of the readings table count (they hold its RowExclusiveLock, taken before
    they draw an id): a heartbeat, an audit row or any other write cannot hold the rollups back.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT DISTINCT a.backend_xid::text FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'relation' AND l.mode = 'RowExclusiveLock' AND l.relation = %s::regclass "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()",
            [SensorReading._meta.db_table],
        )
        return {row[0] for row in cursor.fetchall()}


@dataclass(frozen=True)
class _Plan:
    through: int  # read up to this id now
    next_through: int  # the candidate for a later pass
    next_xids: list[str] | None  # writers the candidate waits for ([]: none; None: unknown)


def _plan(row: RollupCursor, wait_seconds: float) -> _Plan:
    # The id first, then the writers: a transaction that held a lower id then is either
    # among the writers or has ended, so its rows are visible to the next pass.
    deadline = time.monotonic() + max(0.0, wait_seconds)
    waited = False
    while True:
        seen = _max_committed_id()
        if connection.vendor != "postgresql":
            return _Plan(seen, seen, [])
        writers = _writers_now()
        if not writers:
            if not waited:
                return _Plan(seen, seen, [])
            # The writers waited for ended, perhaps just after `seen` was read: read it once
            # more, so that the wait takes what they committed (the next check is the rule).
            waited = False
            continue
        if time.monotonic() >= deadline:
            break
        waited = True
        time.sleep(_POLL_SECONDS)
    # The previous candidate, if every writer it waited for has ended; else nothing new yet.
    previous_ok = row.next_xids is not None and not (set(row.next_xids) & writers)
    through = min(seen, row.next_through) if previous_ok else row.built_through
    return _Plan(max(through, row.built_through), seen, sorted(writers))


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
    merge = (
        "ON CONFLICT (tenant_id, sensor_id, bucket, start) DO UPDATE SET "
        f"min = {least}(o.min, excluded.min), max = {greatest}(o.max, excluded.max), "
        "sum = o.sum + excluded.sum, count = o.count + excluded.count"
    )
    columns = "(tenant_id, sensor_id, bucket, start, min, max, sum, count)"
    if connection.vendor == "postgresql":
        # One scan of the range: its hour buckets, then the day buckets from those (min of
        # mins, max of maxes, sums of sums and counts: the same figures as from the rows).
        hour, day = int(SensorRollup.Bucket.HOUR), int(SensorRollup.Bucket.DAY)
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH hours AS MATERIALIZED (SELECT r.tenant_id, r.sensor_id, {_bucket_sql(hour)} AS start, "  # noqa: S608
                f"MIN({value}) AS min, MAX({value}) AS max, SUM({value}) AS sum, COUNT(*) AS count "
                f"FROM {readings} AS r JOIN {sensors} AS s ON s.id = r.sensor_id "
                "WHERE r.id > %s AND r.id <= %s AND r.value IS NOT NULL GROUP BY 1, 2, 3), "
                f"hour_rows AS (INSERT INTO {rollup} AS o {columns} "
                f"SELECT tenant_id, sensor_id, {hour}, start, min, max, sum, count FROM hours {merge}) "
                f"INSERT INTO {rollup} AS o {columns} "
                f"SELECT tenant_id, sensor_id, {day}, to_timestamp(floor(extract(epoch FROM start) / {day}) * {day}), "
                f"MIN(min), MAX(max), SUM(sum), SUM(count) FROM hours GROUP BY 1, 2, 4 {merge}",
                [low, high],
            )
        return
    with connection.cursor() as cursor:
        for bucket in SensorRollup.Bucket:
            seconds = int(bucket)
            start = _bucket_sql(seconds)
            cursor.execute(
                f"INSERT INTO {rollup} AS o (tenant_id, sensor_id, bucket, start, min, max, sum, count) "  # noqa: S608
                f"SELECT r.tenant_id, r.sensor_id, {seconds}, {start}, MIN({value}), MAX({value}), "
                f"SUM({value}), COUNT(*) FROM {readings} AS r JOIN {sensors} AS s ON s.id = r.sensor_id "
                "WHERE r.id > %s AND r.id <= %s AND r.value IS NOT NULL "
                f"GROUP BY r.tenant_id, r.sensor_id, {start} {merge}",
                [low, high],
            )


def rollups_build(*, wait_seconds: float = INFLIGHT_WAIT_SECONDS) -> int:
    """Bring the rollups up to date as far as is safe now; returns `built_through` (every reading
    with id <= it is rolled up). Never waits for in-flight ingests (unless `wait_seconds` > 0,
    at most that long) nor for another pass (it returns what that one has built so far).
    """
    current = RollupCursor.objects.filter(name=CURSOR_NAME).first()
    if current is None:
        RollupCursor.objects.get_or_create(name=CURSOR_NAME)
    elif current.built_through >= _max_committed_id():
        return current.built_through  # up to date: two reads, no lock
    while True:
        with transaction.atomic():
            row = RollupCursor.objects.select_for_update(skip_locked=True).filter(name=CURSOR_NAME).first()
            if row is None:  # another pass holds the cursor: what it has committed is built
                return RollupCursor.objects.get(name=CURSOR_NAME).built_through
            plan = _plan(row, wait_seconds)
            high = min(plan.through, row.built_through + CHUNK_IDS)
            if high > row.built_through:
                _merge_range(row.built_through, high)
            # A kept older candidate stays safe: any of its writers still running is in next_xids.
            RollupCursor.objects.filter(pk=row.pk).update(
                built_through=high,
                next_through=max(plan.next_through, row.next_through),
                next_xids=plan.next_xids,
                updated_at=timezone.now(),
            )
            if high >= plan.through:
                if high > row.built_through:
                    logger.info("rollups built through reading id %s", high)
                return high
