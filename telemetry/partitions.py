"""Time partitions of the readings table on PostgreSQL (declarative range partitions on `ts`).

Hand-written rather than django-postgres-extra or pg_partman (see docs/notes/scale.md):
the whole of it is creating week-wide partitions ahead, a default partition so that
no ingest ever fails for want of one, and dropping a partition only when every row
in it is past its own tenant's window, held by no hold and already in the rollups.
SQLite keeps one table; every function here is a no-op there.

- The parent keeps Django's table name, so ingest, reads and the admin are
  unchanged. Its primary key is (id, ts) in the database (a partitioned table's
  keys must contain the partition column), while Django's model keeps `id` as its
  single-column key; ids come from one identity sequence, unique across partitions.
- Partitions are `<table>_pYYYYMMDD`, [day, day + width) in UTC, width
  `READINGS_PARTITION_DAYS` (default 7, chosen from measurements: docs/notes/scale.md),
  aligned to multiples of the width since 1970-01-01. Readings outside every partition (an old
  backfill) go to `<table>_default`; creating a partition whose range already has
  rows in the default moves them into it in the same transaction.
- A drop (`partition_drop_expired`) runs only from the maintenance job, one at a
  time (an advisory lock), and detaches and drops a partition in one transaction
  after re-checking, under locks that keep out new rows and new holds, that it may.
"""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from telemetry.models import SensorReading

logger = logging.getLogger(__name__)

# pg_advisory_lock keys (any constant unique to this purpose).
_MAINTENANCE_LOCK = 0x48_4C_54_50  # "HLTP"
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def parent_table() -> str:
    return SensorReading._meta.db_table


def default_partition() -> str:
    return f"{parent_table()}_default"


def width_days() -> int:
    return max(1, int(getattr(settings, "READINGS_PARTITION_DAYS", 7)))


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
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_MAINTENANCE_LOCK + 1])
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


# --- Dropping whole partitions -------------------------------------------------------


@dataclass(frozen=True)
class Dropped:
    name: str
    rows_by_tenant: dict[UUID, int]


def _tenants_in(cursor, table: str) -> list[UUID]:
    """The distinct tenants of a partition, one index probe each (a loose scan of (tenant_id, ts))."""
    qn = connection.ops.quote_name
    cursor.execute(
        f"WITH RECURSIVE t AS ((SELECT tenant_id FROM {qn(table)} ORDER BY tenant_id LIMIT 1) "  # noqa: S608
        f"UNION ALL SELECT (SELECT r.tenant_id FROM {qn(table)} r WHERE r.tenant_id > t.tenant_id "
        "ORDER BY r.tenant_id LIMIT 1) FROM t WHERE t.tenant_id IS NOT NULL) "
        "SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL"
    )
    return [row[0] for row in cursor.fetchall()]


def _why_kept(cursor, *, table: str, tenants: list, now: datetime, built_through: int) -> str | None:
    """Why the partition must stay, or None if every row is expired for its tenant, unheld and rolled up."""
    from retention import policies  # retention builds on telemetry
    from tenants.models import Tenant

    qn = connection.ops.quote_name
    by_id = {t.pk: t for t in Tenant.objects.select_related("retention_policy").filter(pk__in=tenants)}
    for tenant_id in tenants:
        tenant = by_id.get(tenant_id)
        if tenant is None:
            return f"rows of an unknown tenant {tenant_id}"
        try:
            cutoff = now - timedelta(days=policies.effective_windows(tenant=tenant)["readings"])
        except policies.UnknownTier:
            return f"tenant {tenant_id} has no retention window"
        cursor.execute(f"SELECT max(ts) FROM {qn(table)} WHERE tenant_id = %s", [tenant_id])  # noqa: S608
        newest = cursor.fetchone()[0]
        if newest is not None and newest >= cutoff:
            return f"tenant {tenant_id} has rows inside its window"
        held, held_params = policies.held_sql(
            holds=policies.active_holds(tenant_id=tenant_id), ts_column="ts", sensor_column="sensor_id"
        )
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {qn(table)} WHERE tenant_id = %s AND {held})",  # noqa: S608
            [tenant_id, *held_params],
        )
        if cursor.fetchone()[0]:
            return f"tenant {tenant_id} has held rows"
    cursor.execute(f"SELECT max(id) FROM {qn(table)}")  # noqa: S608
    highest = cursor.fetchone()[0]
    if highest is not None and highest > built_through:
        return "rows not yet in the rollups"
    return None


def _oldest_possible_cutoff(now: datetime) -> datetime:
    """Before this, no tenant of any tier keeps raw readings: an empty partition older is useless."""
    from tenants import tiers

    longest = max((tiers.tier_windows(name)["readings"] for name in tiers.tier_names()), default=0)
    return now - timedelta(days=longest)


def _shortest_window() -> int:
    """The shortest readings window of any tenant (days): its policy, or its tier's."""
    from retention import policies
    from tenants.models import Tenant

    windows = []
    for tenant in Tenant.objects.select_related("retention_policy"):
        try:
            windows.append(policies.effective_windows(tenant=tenant)["readings"])
        except policies.UnknownTier:
            continue
    return min(windows, default=0)


def _count_by_tenant(cursor, *, table: str, tenants: list) -> dict:
    """Exact rows per tenant of a partition, for the run records: the one part of a drop that is
    O(rows) (a sequential count, about 20 M rows/s here). A partition of one tenant (the tenants
    are known already) is counted without hashing a uuid per row, two to four times faster."""
    qn = connection.ops.quote_name
    if not tenants:
        return {}
    if len(tenants) == 1:
        cursor.execute(f"SELECT count(*) FROM {qn(table)}")  # noqa: S608
        return {tenants[0]: cursor.fetchone()[0]}
    cursor.execute(f"SELECT tenant_id, count(*) FROM {qn(table)} GROUP BY tenant_id")  # noqa: S608
    return dict(cursor.fetchall())


def _drop_one(partition: Partition, *, now: datetime, built_through: int, lock_timeout_ms: int) -> Dropped | None:
    """Detach and drop one partition in one transaction if it may go; None (nothing changed) otherwise."""
    from tenants.models import Tenant

    qn = connection.ops.quote_name
    with transaction.atomic(), connection.cursor() as cursor:
        # One round trip: wait at most lock_timeout for the locks; deferred foreign-key checks
        # of rows inserted earlier in this transaction would forbid the DROP: run them now.
        # Then the locks: no new row can enter the partition, nor can the parent change, until
        # we commit. (No synchronous_commit = off: PostgreSQL flushes the WAL at the commit of
        # any transaction that drops a relation whatever it says, a few ms per drop here.)
        cursor.execute(
            f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}; "
            "SET CONSTRAINTS ALL IMMEDIATE; "
            f"LOCK TABLE {qn(parent_table())}, {qn(partition.name)} IN ACCESS EXCLUSIVE MODE"
        )
        tenants = _tenants_in(cursor, partition.name)
        if not tenants and partition.end > _oldest_possible_cutoff(now):
            return None
        # A hold is created under its tenant's row lock: taking them keeps new holds out.
        list(Tenant.objects.select_for_update().filter(pk__in=tenants).order_by("pk").values_list("pk", flat=True))
        reason = _why_kept(cursor, table=partition.name, tenants=tenants, now=now, built_through=built_through)
        if reason:
            logger.info("readings partition %s kept: %s", partition.name, reason)
            return None
        rows_by_tenant = _count_by_tenant(cursor, table=partition.name, tenants=tenants)
        cursor.execute(f"ALTER TABLE {qn(parent_table())} DETACH PARTITION {qn(partition.name)}")
        cursor.execute(f"DROP TABLE {qn(partition.name)}")
        _record_drop(partition=partition, rows_by_tenant=rows_by_tenant, now=now)
    logger.info("readings partition %s dropped (%s rows)", partition.name, sum(rows_by_tenant.values()))
    return Dropped(partition.name, rows_by_tenant)


def _record_drop(*, partition: Partition, rows_by_tenant: dict, now: datetime) -> None:
    """One succeeded `maintenance` run per affected tenant, in the drop's transaction."""
    from audit.services import audit_record
    from core.caller import Caller
    from retention import policies
    from retention.models import RetentionRun
    from tenants.models import Tenant

    for tenant in Tenant.objects.select_related("retention_policy").filter(pk__in=rows_by_tenant):
        windows = policies.effective_windows(tenant=tenant)
        cutoffs = policies.cutoffs_for(windows=windows, now=now)
        run = RetentionRun.objects.create(
            tenant=tenant,
            trigger=RetentionRun.Trigger.MAINTENANCE,
            status=RetentionRun.Status.SUCCEEDED,
            cutoff=cutoffs["readings"],
            cutoffs={name: value.isoformat() for name, value in cutoffs.items()},
            retention_days=windows["readings"],
            readings_deleted=rows_by_tenant[tenant.pk],
            partitions_dropped=1,
            created_at=now,
            started_at=now,
            finished_at=now,
            updated_at=now,
        )
        audit_record(
            by=Caller.system(tenant_id=tenant.pk),
            action="retention.run_succeeded",
            target=run,
            changes={
                "trigger": "maintenance",
                "partition": partition.name,
                "from": partition.start,
                "to": partition.end,
                "readings_deleted": run.readings_deleted,
            },
        )


def _drop_if_expired(
    partition: Partition, *, now: datetime, newest_candidate: datetime, built_through: int, lock_timeout_ms: int
) -> Dropped | None:
    if partition.end > now or partition.start >= newest_candidate:
        return None
    # A first look without locks; only a partition that passes is locked and looked at again.
    with connection.cursor() as cursor:
        tenants = _tenants_in(cursor, partition.name)
        if not tenants and partition.end > _oldest_possible_cutoff(now):
            return None  # empty, but some tier may still backfill into its range
        if tenants and _why_kept(cursor, table=partition.name, tenants=tenants, now=now, built_through=built_through):
            return None
    return _drop_one(partition, now=now, built_through=built_through, lock_timeout_ms=lock_timeout_ms)


def partition_drop_expired(
    *,
    now: datetime | None = None,
    lock_timeout_ms: int = 5000,
    on_partition_done: Callable[[Partition, Dropped | None], None] | None = None,
) -> list[Dropped]:
    """Drop, one at a time, every partition whose rows are all past their tenants' windows (maintenance only).

    Returns what was dropped; [] if another maintenance job holds the lock, or not partitioned.
    `on_partition_done(partition, dropped or None)` is called once per range partition looked
    at (all but the default one, in order), for a command's progress.
    """
    from telemetry.rollups import rollups_build

    if not is_partitioned():
        return []
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_MAINTENANCE_LOCK])
        if not cursor.fetchone()[0]:
            logger.info("readings partition maintenance skipped: another job holds the lock")
            return []
    try:
        # Rows of a partition go only once they are in the rollups.
        built_through = rollups_build()
        # A partition starting after the shortest window's cutoff holds only rows inside
        # every tenant's window: not even a candidate.
        newest_candidate = now - timedelta(days=_shortest_window())
        dropped = []
        for partition in partition_list():
            if partition.start is None:
                continue
            result = _drop_if_expired(
                partition,
                now=now,
                newest_candidate=newest_candidate,
                built_through=built_through,
                lock_timeout_ms=lock_timeout_ms,
            )
            if result is not None:
                dropped.append(result)
            if on_partition_done is not None:
                on_partition_done(partition, result)
        return dropped
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_MAINTENANCE_LOCK])
