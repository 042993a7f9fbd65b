"""Time partitions of the readings table on PostgreSQL (declarative range partitions on `ts`).

Hand-written rather than django-postgres-extra or pg_partman (see docs/notes/scale.md):
the whole of it is creating partitions ahead (28 days wide by default), a default partition so that
no ingest ever fails for want of one, and dropping a partition only when every row
in it is past its own tenant's window, held by no hold and already in the rollups.
SQLite keeps one table; every function here is a no-op there.

- The parent keeps Django's table name, so ingest, reads and the admin are
  unchanged. Its primary key is (id, ts) in the database (a partitioned table's
  keys must contain the partition column), while Django's model keeps `id` as its
  single-column key; ids come from one identity sequence, unique across partitions.
- Partitions are `<table>_pYYYYMMDD`, [day, day + width) in UTC, width
  `READINGS_PARTITION_DAYS` (default 28, chosen from measurements: docs/notes/scale.md),
  aligned to multiples of the width since 1970-01-01. Readings outside every partition (an old
  backfill) go to `<table>_default`; creating a partition whose range already has
  rows in the default moves them into it in the same transaction.
- A drop (`partition_drop_expired`) runs only from the maintenance job, one at a
  time (an advisory lock), and detaches and drops a partition in one transaction
  after re-checking, under locks that keep out new rows and new holds, that it may.
"""

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from telemetry.models import ReadingDayCount, SensorReading

logger = logging.getLogger(__name__)

# pg_advisory_lock keys (any constant unique to this purpose).
MAINTENANCE_LOCK = 0x48_4C_54_50  # "HLTP"
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def parent_table() -> str:
    return SensorReading._meta.db_table


def default_partition() -> str:
    return f"{parent_table()}_default"


def width_days() -> int:
    return max(1, int(getattr(settings, "READINGS_PARTITION_DAYS", 28)))


def ahead_days() -> int:
    """How far ahead of today partitions exist (the beat job keeps it so)."""
    return max(1, int(getattr(settings, "READINGS_PARTITIONS_AHEAD_DAYS", 7)))


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [parent_table()])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime | None  # None: the default partition
    end: datetime | None


def _parse_bound(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace(" ", "T"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def partition_list() -> list[Partition]:
    """The partitions of the readings table, oldest first, the default last."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [parent_table()],
        )
        rows = cursor.fetchall()
    partitions = []
    for name, bound in rows:
        match = _BOUND.search(bound)
        if match:
            partitions.append(Partition(name, _parse_bound(match.group(1)), _parse_bound(match.group(2))))
        else:
            partitions.append(Partition(name, None, None))
    return sorted(partitions, key=lambda p: (p.start is None, p.start or datetime.min.replace(tzinfo=UTC)))


def _window_start(day: date) -> date:
    epoch_day = (day - date(1970, 1, 1)).days
    return date(1970, 1, 1) + timedelta(days=epoch_day - epoch_day % width_days())


def _at_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _create(cursor, *, start: date, end: date) -> str:
    qn = connection.ops.quote_name
    name = f"{parent_table()}_p{start:%Y%m%d}"
    low, high = _at_midnight(start), _at_midnight(end)
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {qn(default_partition())} WHERE ts >= %s AND ts < %s)",  # noqa: S608
        [low, high],
    )
    bounds = f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
    if not cursor.fetchone()[0]:
        cursor.execute(f"CREATE TABLE {qn(name)} PARTITION OF {qn(parent_table())} {bounds}")
        return name
    # Readings of this range already sit in the default partition (an old backfill):
    # move them into the new table and attach it, all in this transaction.
    cursor.execute(f"CREATE TABLE {qn(name)} (LIKE {qn(parent_table())} INCLUDING DEFAULTS)")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {qn(default_partition())} WHERE ts >= %s AND ts < %s RETURNING *) "  # noqa: S608
        f"INSERT INTO {qn(name)} SELECT * FROM moved",
        [low, high],
    )
    cursor.execute(f"ALTER TABLE {qn(parent_table())} ATTACH PARTITION {qn(name)} {bounds}")
    return name


def partitions_ensure(*, since: datetime | None = None, through: datetime | None = None) -> list[str]:
    """Create the missing partitions covering [since, through] (default: today to `ahead_days()` ahead).

    Idempotent; a window that overlaps an existing partition is left to it.
    Returns the names created.
    """
    if not is_partitioned():
        return []
    today = timezone.now().astimezone(UTC).date()
    first = _window_start((since or timezone.now()).astimezone(UTC).date())
    last = (through or _at_midnight(today + timedelta(days=ahead_days()))).astimezone(UTC).date()
    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [MAINTENANCE_LOCK + 1])
        existing = [(p.start, p.end) for p in partition_list() if p.start is not None]
        day = first
        while day <= last:
            end = day + timedelta(days=width_days())
            low, high = _at_midnight(day), _at_midnight(end)
            if not any(start < high and low < stop for start, stop in existing):
                created.append(_create(cursor, start=day, end=end))
                existing.append((low, high))
            day = end
    if created:
        logger.info("readings partitions created: %s", ", ".join(created))
    return created


def oldest_possible_cutoff(now: datetime) -> datetime:
    """Before this, no tenant of any tier keeps raw readings: an empty partition older is useless."""
    from tenants import tiers

    longest = max((tiers.tier_windows(name)["readings"] for name in tiers.tier_names()), default=0)
    return now - timedelta(days=longest)


def reading_day_counts_forget(*, start: datetime, end: datetime) -> None:
    """Forget the day counts of [start, end) (a dropped partition's days: no reading of them is left).

    In the drop's transaction, under its lock on the parent: no write can add to them meanwhile.
    """
    ReadingDayCount.objects.filter(day__gte=start.astimezone(UTC).date(), day__lt=end.astimezone(UTC).date()).delete()


def reading_day_counts_rebuild() -> int:
    """Count every reading again, per tenant and UTC day (after a bulk load with triggers off).

    Locks the readings table against writes while it counts; returns the readings counted.
    """
    if not is_partitioned():
        return 0
    table, counts = connection.ops.quote_name(parent_table()), connection.ops.quote_name(ReadingDayCount._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {table} IN SHARE MODE")
        cursor.execute(f"DELETE FROM {counts}")  # noqa: S608 - names from model meta
        cursor.execute(
            f"INSERT INTO {counts} (tenant_id, day, slot, rows) "  # noqa: S608 - names from model meta
            f"SELECT tenant_id, (ts AT TIME ZONE 'UTC')::date, 0, count(*) FROM {table} GROUP BY 1, 2"
        )
        cursor.execute(f"SELECT coalesce(sum(rows), 0) FROM {counts}")  # noqa: S608
        return int(cursor.fetchone()[0])
