"""Dropping whole readings partitions whose rows are all past their tenants' windows.

Retention's side of the partitioned readings table (`telemetry.partitions` creates and lists
the partitions): a partition goes in one DETACH and DROP when every row in it is outside its
tenant's window, unheld and in the rollups, and each affected tenant gets a succeeded
`maintenance` run and an audit event. Here rather than in telemetry because the rules are
retention's (windows, holds, runs), and retention builds on telemetry, not the reverse.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from audit.services import audit_record
from core.caller import Caller
from retention import policies
from retention.models import RetentionRun
from telemetry import partitions, selectors
from telemetry.partitions import Partition
from telemetry.rollups import rollups_build
from tenants.models import Tenant

logger = logging.getLogger(__name__)


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


def _readings_cutoff(tenant: Tenant, now: datetime) -> datetime | None:
    """Before this, the tenant's readings are past its window; None: it has no window (keep everything)."""
    try:
        return now - timedelta(days=policies.effective_windows(tenant=tenant)["readings"])
    except policies.UnknownTier:
        return None


def _newest_and_highest(cursor, *, table: str, tenants: list) -> tuple[list, int | None]:
    """Each tenant's newest reading time in the partition and its highest id: one index probe each, one round trip."""
    qn = connection.ops.quote_name
    newest = ", ".join(f"(SELECT max(ts) FROM {qn(table)} WHERE tenant_id = %s)" for _ in tenants)  # noqa: S608
    cursor.execute(f"SELECT (SELECT max(id) FROM {qn(table)}){', ' if tenants else ''}{newest}", tenants)  # noqa: S608
    highest, *newest_times = cursor.fetchone()
    return newest_times, highest


def _why_kept(
    cursor, *, partition: Partition, tenants: list, by_id: dict, now: datetime, built_through: int
) -> str | None:
    """Why the partition must stay, or None if every row is expired for its tenant, unheld and rolled up.

    Called under the drop's locks: what it reads cannot change before the drop commits.
    """
    qn = connection.ops.quote_name
    newest_times, highest = _newest_and_highest(cursor, table=partition.name, tenants=tenants)
    for tenant_id, newest in zip(tenants, newest_times, strict=True):
        tenant = by_id.get(tenant_id)
        if tenant is None:
            return f"rows of an unknown tenant {tenant_id}"
        cutoff = _readings_cutoff(tenant, now)
        if cutoff is None:
            return f"tenant {tenant_id} has no retention window"
        if newest is not None and newest >= cutoff:
            return f"tenant {tenant_id} has rows inside its window"
    holds = policies.active_holds_by_tenant(tenant_ids=tenants, since=partition.start, until=partition.end)
    for tenant_id, tenant_holds in holds.items():
        held, held_params = policies.held_sql(holds=tenant_holds, ts_column="ts", sensor_column="sensor_id")
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {qn(partition.name)} WHERE tenant_id = %s AND {held})",  # noqa: S608
            [tenant_id, *held_params],
        )
        if cursor.fetchone()[0]:
            return f"tenant {tenant_id} has held rows"
    if highest is not None and highest > built_through:
        return "rows not yet in the rollups"
    return None


def _surely_kept(partition: Partition, *, tenants_by_day: dict, cutoffs: dict, now: datetime) -> bool:
    """A first look, without locks or queries: the day counts show a row that must stay, or nothing to drop.

    Only rules partitions out (a row on a day that starts inside its tenant's window is
    inside it); what it lets through is checked row-exactly under the drop's locks.
    """
    seen = False
    day = partition.start
    while day < partition.end:
        for tenant_id in tenants_by_day.get(day.astimezone(UTC).date(), ()):
            seen = True
            cutoff = cutoffs.get(tenant_id)
            if cutoff is None or day >= cutoff:
                return True
        day += timedelta(days=1)
    # Empty: it goes only once no tier can backfill into its range any more.
    return not seen and partition.end > partitions.oldest_possible_cutoff(now)


def _rows_by_tenant(cursor, *, partition: Partition, tenants: list) -> dict:
    """Exact rows per tenant of a partition, for the run records, without counting them.

    The database's triggers keep them per tenant and day (telemetry.models.ReadingDayCount).
    Should those disagree with the tenants the partition holds (a bulk load with triggers off
    and no rebuild), the rows are counted after all, at 7-20 M rows/s: slower, still exact.
    """
    kept: dict = {}
    for (tenant_id, _day), rows in selectors.reading_day_counts(start=partition.start, end=partition.end).items():
        kept[tenant_id] = kept.get(tenant_id, 0) + rows
    if set(kept) == set(tenants):
        return kept
    logger.warning("readings partition %s: day counts out of step with its rows; counting them", partition.name)
    qn = connection.ops.quote_name
    cursor.execute(f"SELECT tenant_id, count(*) FROM {qn(partition.name)} GROUP BY tenant_id")  # noqa: S608
    return dict(cursor.fetchall())


def _drop_one(partition: Partition, *, now: datetime, built_through: int, lock_timeout_ms: int) -> Dropped | None:
    """Detach and drop one partition in one transaction if it may go; None (nothing changed) otherwise."""

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
            f"LOCK TABLE {qn(partitions.parent_table())}, {qn(partition.name)} IN ACCESS EXCLUSIVE MODE"
        )
        tenants = _tenants_in(cursor, partition.name)
        if not tenants and partition.end > partitions.oldest_possible_cutoff(now):
            return None
        # A hold is created under its tenant's row lock: taking them keeps new holds out.
        locked = Tenant.objects.select_for_update(of=("self",)).select_related("retention_policy")
        by_id = {t.pk: t for t in locked.filter(pk__in=tenants).order_by("pk")}
        reason = _why_kept(
            cursor, partition=partition, tenants=tenants, by_id=by_id, now=now, built_through=built_through
        )
        if reason:
            logger.info("readings partition %s kept: %s", partition.name, reason)
            return None
        rows_by_tenant = _rows_by_tenant(cursor, partition=partition, tenants=tenants)
        cursor.execute(f"ALTER TABLE {qn(partitions.parent_table())} DETACH PARTITION {qn(partition.name)}")
        cursor.execute(f"DROP TABLE {qn(partition.name)}")
        partitions.reading_day_counts_forget(start=partition.start, end=partition.end)
        _record_drop(partition=partition, rows_by_tenant=rows_by_tenant, tenants=by_id, now=now)
    logger.info("readings partition %s dropped (%s rows)", partition.name, sum(rows_by_tenant.values()))
    return Dropped(partition.name, rows_by_tenant)


def _record_drop(*, partition: Partition, rows_by_tenant: dict, tenants: dict, now: datetime) -> None:
    """One succeeded `maintenance` run per affected tenant, in the drop's transaction."""

    for tenant_id in rows_by_tenant:
        tenant = tenants[tenant_id]
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
    if not partitions.is_partitioned():
        return []
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [partitions.MAINTENANCE_LOCK])
        if not cursor.fetchone()[0]:
            logger.info("readings partition maintenance skipped: another job holds the lock")
            return []
    try:
        # Rows of a partition go only once they are in the rollups.
        built_through = rollups_build()
        cutoffs = {t.pk: _readings_cutoff(t, now) for t in Tenant.objects.select_related("retention_policy")}
        # A partition starting at or after the latest cutoff (the shortest window's) holds only
        # rows inside every window: not even a candidate. The rest are first looked at through
        # the day counts.
        latest_cutoff = max((c for c in cutoffs.values() if c is not None), default=now)
        ranges = [p for p in partitions.partition_list() if p.start is not None]
        candidates = [p for p in ranges if p.end <= now and p.start < latest_cutoff]
        tenants_by_day: dict = {}
        if candidates:
            for tenant_id, day in selectors.reading_day_counts(start=candidates[0].start, end=candidates[-1].end):
                tenants_by_day.setdefault(day, []).append(tenant_id)
        dropped = []
        for partition in ranges:
            result = None
            if partition in candidates and not _surely_kept(
                partition, tenants_by_day=tenants_by_day, cutoffs=cutoffs, now=now
            ):
                result = _drop_one(partition, now=now, built_through=built_through, lock_timeout_ms=lock_timeout_ms)
            if result is not None:
                dropped.append(result)
            if on_partition_done is not None:
                on_partition_done(partition, result)
        return dropped
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [partitions.MAINTENANCE_LOCK])
