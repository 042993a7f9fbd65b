"""Retention: delete a tenant's telemetry older than its tier's window, and nothing newer.

How a run deletes (see docs/notes/retention.md for why):

- The cutoff is fixed when the run starts: `now - tier window`. A row with a
  timestamp exactly at the cutoff is kept; only strictly older rows go.
- Rows are deleted in batches by walking the (tenant, time) index forward: a
  batch finds the timestamp of the n-th expired row above the previous batch's
  boundary, then deletes `tenant = t AND time > previous AND time <= boundary
  AND time < cutoff` with one DELETE. No batch revisits the dead index entries
  of the batches before it, which is what makes the naive
  `DELETE ... WHERE id IN (SELECT id ... LIMIT n)` loop quadratic.
- Each batch is its own short transaction, together with the run's progress
  counter, so a run killed half-way has deleted whole batches and counted
  exactly those; the next run carries on where it stopped.
- Rows never become Python objects and Django's deletion collector is never
  used: plain SQL, one DELETE per batch, whatever the size.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.utils import timezone

from audit.services import audit_record
from retention import conf
from retention.models import RetentionRun
from telemetry.models import AgentHeartbeat, SensorReading
from tenants import tiers
from tenants.models import Tenant

logger = logging.getLogger(__name__)

Status = RetentionRun.Status

# Error texts are shown to the tenant's admins; keep them short.
_ERROR_MAX_CHARS = 1000


class RetentionError(Exception):
    """A run cannot be carried out as configured (recorded as the run's error)."""


class RetentionRunBusy(Exception):
    """The run is being executed by a live worker; try again later (a redelivered task)."""


class _RunLost(Exception):
    """Another worker took the run over: this one must not commit another batch."""


@dataclass(frozen=True)
class _ExpiringTable:
    """A kind of telemetry retention deletes, and where its counter goes on the run."""

    model: type[models.Model]
    time_field: str
    counter: str


_EXPIRING_TABLES = (
    _ExpiringTable(SensorReading, "ts", "readings_deleted"),
    _ExpiringTable(AgentHeartbeat, "received_at", "heartbeats_deleted"),
)


def retention_cutoff(*, tenant: Tenant, now: datetime | None = None) -> tuple[datetime, int]:
    """The cutoff for `tenant` at `now` and the window (days) it comes from."""
    if tenant.tier not in tiers.tier_names():
        raise RetentionError(f"Tenant tier {tenant.tier!r} has no retention window configured.")
    days = tiers.retention_days(tenant.tier)
    return (now or timezone.now()) - timedelta(days=days), days


def _is_stale(run: RetentionRun, now: datetime) -> bool:
    if run.status == Status.QUEUED:
        return run.created_at < now - conf.queued_stale_after()
    return run.updated_at < now - conf.running_stale_after()


def _abandon(run: RetentionRun, now: datetime) -> None:
    """Fail an active run whose worker or message is presumed lost (if nothing changed it meanwhile)."""
    abandoned = RetentionRun.objects.filter(pk=run.pk, status=run.status, updated_at=run.updated_at).update(
        status=Status.FAILED,
        finished_at=now,
        updated_at=now,
        execution_token=None,
        error=f"Abandoned: no progress while {run.status} since {run.updated_at.isoformat()}.",
    )
    if abandoned:
        logger.warning("retention run %s of tenant %s abandoned while %s", run.pk, run.tenant_id, run.status)
        audit_record(
            tenant_id=run.tenant_id,
            action="retention.run_abandoned",
            target=run,
            changes={"status": Status.FAILED, "was": run.status},
        )


def _active_run(*, tenant_id: UUID) -> RetentionRun | None:
    return RetentionRun.objects.filter(tenant_id=tenant_id, status__in=RetentionRun.ACTIVE_STATUSES).first()


def retention_run_request(
    *,
    tenant: Tenant,
    trigger: str,
    requested_by=None,
    client_ip: str | None = None,
) -> tuple[RetentionRun, bool]:
    """A queued run for `tenant`, or the run already queued or running: (run, created).

    The caller enqueues the created run (retention.tasks.retention_run_enqueue).
    An active run presumed lost (see conf) is failed and replaced.
    """
    for _ in range(5):
        now = timezone.now()
        active = _active_run(tenant_id=tenant.pk)
        if active is not None:
            if not _is_stale(active, now):
                return active, False
            _abandon(active, now)
        try:
            with transaction.atomic():
                run = RetentionRun.objects.create(
                    tenant=tenant, trigger=trigger, requested_by=requested_by, created_at=now, updated_at=now
                )
                audit_record(
                    tenant_id=tenant.pk,
                    action="retention.run_requested",
                    actor=requested_by,
                    target=run,
                    changes={"trigger": trigger},
                    client_ip=client_ip,
                )
        except IntegrityError:
            # Another request created the tenant's active run between our look and our
            # insert (the partial unique constraint said no): look again and return it.
            continue
        return run, True
    raise RuntimeError(f"Could not request a retention run for tenant {tenant.pk}: it keeps changing.")


def _claim(run_id: UUID) -> tuple[RetentionRun, UUID] | None:
    """Move the run to running and take its execution token; None if it is not ours to run."""
    try:
        run = RetentionRun.objects.select_related("tenant").get(pk=run_id)
    except RetentionRun.DoesNotExist:
        logger.warning("retention run %s does not exist; nothing to do", run_id)
        return None
    now = timezone.now()
    if run.status == Status.RUNNING:
        if not _is_stale(run, now):
            raise RetentionRunBusy(f"Retention run {run_id} is running on a live worker.")
        # Its worker died (the message came back after worker loss): resume it,
        # with the cutoff it started with.
        logger.warning("retention run %s resumed after its worker stopped making progress", run_id)
    elif run.status != Status.QUEUED:
        logger.info("retention run %s is already %s; nothing to do", run_id, run.status)
        return None
    token = uuid4()
    try:
        cutoff, days = (run.cutoff, run.retention_days) if run.cutoff else retention_cutoff(tenant=run.tenant, now=now)
    except RetentionError as exc:
        # Nothing is deleted without a window to go by.
        failed = RetentionRun.objects.filter(pk=run.pk, status=run.status, updated_at=run.updated_at).update(
            status=Status.FAILED, started_at=now, finished_at=now, updated_at=now, error=str(exc)
        )
        if failed:
            logger.error("retention run %s failed: %s", run_id, exc)
            audit_record(
                tenant_id=run.tenant_id, action="retention.run_failed", target=run, changes={"error": str(exc)}
            )
        return None
    claimed = RetentionRun.objects.filter(pk=run.pk, status=run.status, updated_at=run.updated_at).update(
        status=Status.RUNNING,
        cutoff=cutoff,
        retention_days=days,
        started_at=run.started_at or now,
        updated_at=now,
        attempts=F("attempts") + 1,
        execution_token=token,
    )
    if not claimed:
        logger.info("retention run %s was claimed or changed by another worker", run_id)
        return None
    run.refresh_from_db()
    return run, token


def _db_uuid(value: UUID):
    return RetentionRun._meta.pk.get_db_prep_value(value, connection)


def _db_datetime(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _record_progress(*, run_id: UUID, token: UUID, counter: str, deleted: int) -> None:
    """Add a batch to the run's count, in the batch's transaction, if the run is still ours."""
    qn = connection.ops.quote_name
    run_table, count = qn(RetentionRun._meta.db_table), qn(counter)
    sql = f"UPDATE {run_table} SET {count} = {count} + %s, updated_at = %s WHERE id = %s AND status = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(
            f"{sql} AND execution_token = %s",
            [deleted, _db_datetime(timezone.now()), _db_uuid(run_id), Status.RUNNING.value, _db_uuid(token)],
        )
        progressed = cursor.rowcount
    if not progressed:
        raise _RunLost(f"Retention run {run_id} was taken over by another worker.")


def _delete_batch(
    *,
    run_id: UUID,
    token: UUID,
    table: _ExpiringTable,
    tenant_id: UUID,
    cutoff: datetime,
    after: datetime | None,
    size: int,
) -> tuple[int, datetime | None]:
    """Delete the next batch above `after`: (rows deleted, its upper boundary or None if it was the last).

    Plain SQL on the (tenant, time) index, so that a batch allocates no ORM
    objects: the worker's memory stays the same however many batches it runs.
    Only quoted model identifiers are interpolated; every value is a parameter.
    """
    qn = connection.ops.quote_name
    meta = table.model._meta
    time = qn(meta.get_field(table.time_field).column)
    where = f"{qn(meta.get_field('tenant').column)} = %s AND {time} < %s"
    params = [meta.get_field("tenant").get_db_prep_value(tenant_id, connection), _db_datetime(cutoff)]
    if after is not None:
        where += f" AND {time} > %s"
        params.append(_db_datetime(after))
    with connection.cursor() as cursor:
        # The n-th expired row's time, read from the index: one value, not n rows.
        cursor.execute(
            f"SELECT {time} FROM {qn(meta.db_table)} WHERE {where} ORDER BY {time} LIMIT 1 OFFSET %s",  # noqa: S608
            [*params, size - 1],
        )
        row = cursor.fetchone()
    boundary = row[0] if row else None
    if boundary is not None:
        # Rows sharing the boundary's time go with this batch, so the next one starts
        # strictly above it (a batch may exceed `size` by those ties, never loop).
        where += f" AND {time} <= %s"
        params.append(_db_datetime(boundary))
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A batch lost in a server crash just after its commit is redone by the next
            # run (its count goes with it), so it need not wait for the WAL flush.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute(f"DELETE FROM {qn(meta.db_table)} WHERE {where}", params)  # noqa: S608
        deleted = cursor.rowcount
        _record_progress(run_id=run_id, token=token, counter=table.counter, deleted=deleted)
    return deleted, boundary


def _delete_expired(*, run: RetentionRun, token: UUID, table: _ExpiringTable) -> int:
    size = max(1, conf.batch_size())
    total, after = 0, None
    while True:
        deleted, after = _delete_batch(
            run_id=run.pk, token=token, table=table, tenant_id=run.tenant_id, cutoff=run.cutoff, after=after, size=size
        )
        total += deleted
        if after is None:
            return total


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_ERROR_MAX_CHARS]


def retention_run_execute(*, run_id: UUID) -> RetentionRun | None:
    """Carry out a requested run; the run (finished) or None if it was not this caller's to run.

    Raises RetentionRunBusy if a live worker is already executing it. Any other
    failure is recorded on the run (status failed, error) rather than raised.
    """
    claim = _claim(run_id)
    if claim is None:
        return None
    run, token = claim
    logger.info("retention run %s of tenant %s: deleting rows older than %s", run.pk, run.tenant_id, run.cutoff)
    try:
        for table in _EXPIRING_TABLES:
            _delete_expired(run=run, token=token, table=table)
    except _RunLost as exc:
        logger.warning("%s Stopping; its batches so far are kept.", exc)
        return None
    except Exception as exc:
        logger.exception("retention run %s failed", run.pk)
        _finish(run=run, token=token, status=Status.FAILED, error=_error_text(exc))
    else:
        _finish(run=run, token=token, status=Status.SUCCEEDED, error="")
    run.refresh_from_db()
    return run


def _finish(*, run: RetentionRun, token: UUID, status: str, error: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        finished = RetentionRun.objects.filter(pk=run.pk, status=Status.RUNNING, execution_token=token).update(
            status=status, finished_at=now, updated_at=now, error=error, execution_token=None
        )
        if not finished:
            return
        run.refresh_from_db()
        audit_record(
            tenant_id=run.tenant_id,
            action=f"retention.run_{status}",
            target=run,
            changes={
                "cutoff": run.cutoff.isoformat(),
                "readings_deleted": run.readings_deleted,
                "heartbeats_deleted": run.heartbeats_deleted,
                **({"error": error} if error else {}),
            },
        )
    logger.info(
        "retention run %s of tenant %s %s: %s readings, %s heartbeats deleted",
        run.pk,
        run.tenant_id,
        status,
        run.readings_deleted,
        run.heartbeats_deleted,
    )
