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
from datetime import datetime, timedelta
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from audit.services import audit_record
from core.caller import Caller
from retention import policies
from retention.models import RetentionRun
from telemetry import partitions
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


def _why_kept(cursor, *, table: str, tenants: list, now: datetime, built_through: int) -> str | None:
    """Why the partition must stay, or None if every row is expired for its tenant, unheld and rolled up."""

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


def _shortest_window() -> int:
    """The shortest readings window of any tenant (days): its policy, or its tier's."""

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
        list(Tenant.objects.select_for_update().filter(pk__in=tenants).order_by("pk").values_list("pk", flat=True))
        reason = _why_kept(cursor, table=partition.name, tenants=tenants, now=now, built_through=built_through)
        if reason:
            logger.info("readings partition %s kept: %s", partition.name, reason)
            return None
        rows_by_tenant = _count_by_tenant(cursor, table=partition.name, tenants=tenants)
        cursor.execute(f"ALTER TABLE {qn(partitions.parent_table())} DETACH PARTITION {qn(partition.name)}")
        cursor.execute(f"DROP TABLE {qn(partition.name)}")
        _record_drop(partition=partition, rows_by_tenant=rows_by_tenant, now=now)
    logger.info("readings partition %s dropped (%s rows)", partition.name, sum(rows_by_tenant.values()))
    return Dropped(partition.name, rows_by_tenant)


def _record_drop(*, partition: Partition, rows_by_tenant: dict, now: datetime) -> None:
    """One succeeded `maintenance` run per affected tenant, in the drop's transaction."""

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
        if not tenants and partition.end > partitions.oldest_possible_cutoff(now):
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
        # A partition starting after the shortest window's cutoff holds only rows inside
        # every tenant's window: not even a candidate.
        newest_candidate = now - timedelta(days=_shortest_window())
        dropped = []
        for partition in partitions.partition_list():
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
            cursor.execute("SELECT pg_advisory_unlock(%s)", [partitions.MAINTENANCE_LOCK])
