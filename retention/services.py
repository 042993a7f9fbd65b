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

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.utils import timezone

from audit.services import audit_record
from core import errors, metrics
from core.caller import Caller
from retention import conf, policies
from retention.models import RetentionHold, RetentionPolicy, RetentionRun
from telemetry import rollups
from telemetry.models import AgentHeartbeat, Machine, SensorReading, SensorRollup
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
    """A kind of telemetry retention deletes, its data class (policy window) and its counter on the run."""

    model: type[models.Model]
    time_field: str
    data_class: str
    counter: str


_EXPIRING_TABLES = (
    _ExpiringTable(SensorReading, "ts", "readings", "readings_deleted"),
    _ExpiringTable(AgentHeartbeat, "received_at", "heartbeats", "heartbeats_deleted"),
    _ExpiringTable(SensorRollup, "start", "rollups", "rollups_deleted"),
)


def retention_cutoffs(*, tenant: Tenant, now: datetime | None = None) -> tuple[dict[str, datetime], dict[str, int]]:
    """The cutoff of each data class for `tenant` at `now`, and the windows (days) they come from."""
    try:
        windows = policies.effective_windows(tenant=tenant)
    except policies.UnknownTier as exc:
        raise RetentionError(str(exc)) from None
    return policies.cutoffs_for(windows=windows, now=now or timezone.now()), windows


def retention_cutoff(*, tenant: Tenant, now: datetime | None = None) -> tuple[datetime, int]:
    """The readings' cutoff for `tenant` at `now` and the window (days) it comes from."""
    cutoffs, windows = retention_cutoffs(tenant=tenant, now=now)
    return cutoffs["readings"], windows["readings"]


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
            by=Caller.system(tenant_id=run.tenant_id),
            action="retention.run_abandoned",
            target=run,
            changes={"status": Status.FAILED, "was": run.status},
        )


def _active_run(*, tenant_id: UUID) -> RetentionRun | None:
    return RetentionRun.objects.filter(tenant_id=tenant_id, status__in=RetentionRun.ACTIVE_STATUSES).first()


def retention_run_request(*, by: Caller, trigger: str) -> tuple[RetentionRun, bool]:
    """A queued run for `by`'s tenant, or the run already queued or running: (run, created).

    The caller sends the created run to a worker (`retention_run_start` does both).
    An active run presumed lost (see conf) is failed and replaced.
    """
    tenant_id = by.tenant_id
    for _ in range(5):
        now = timezone.now()
        active = _active_run(tenant_id=tenant_id)
        if active is not None:
            if not _is_stale(active, now):
                return active, False
            _abandon(active, now)
        try:
            with transaction.atomic():
                run = RetentionRun.objects.create(
                    tenant_id=tenant_id, trigger=trigger, requested_by=by.user, created_at=now, updated_at=now
                )
                audit_record(by=by, action="retention.run_requested", target=run, changes={"trigger": trigger})
        except IntegrityError:
            # Another request created the tenant's active run between our look and our
            # insert (the partial unique constraint said no): look again and return it.
            continue
        return run, True
    raise RuntimeError(f"Could not request a retention run for tenant {tenant_id}: it keeps changing.")


def retention_run_start(*, by: Caller, trigger: str) -> tuple[RetentionRun, bool]:
    """Request a run of `by`'s tenant and send it to a worker: (run, created), the run's status current.

    One transaction with the publish: a broker that is down raises errors.Unavailable
    (503, Retry-After) and rolls the run back, so none is left queued. Without a broker
    the run is carried out once the transaction commits, before this returns.
    """
    from retention.tasks import retention_run_dispatch  # the task wraps this module's services

    with transaction.atomic():
        run, created = retention_run_request(by=by, trigger=trigger)
        if created:
            retention_run_dispatch(run_id=run.id)
    run.refresh_from_db(fields=["status"])
    return run, created


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
        if run.cutoff and run.cutoffs:
            cutoffs = {name: datetime.fromisoformat(value) for name, value in run.cutoffs.items()}
            days = run.retention_days
        elif run.cutoff:
            # A run started before runs had a cutoff per class: raw data keeps its cutoff.
            cutoffs, _ = retention_cutoffs(tenant=run.tenant, now=now)
            cutoffs.update(readings=run.cutoff, heartbeats=run.cutoff)
            days = run.retention_days
        else:
            cutoffs, windows = retention_cutoffs(tenant=run.tenant, now=now)
            days = windows["readings"]
    except RetentionError as exc:
        # Nothing is deleted without a window to go by.
        failed = RetentionRun.objects.filter(pk=run.pk, status=run.status, updated_at=run.updated_at).update(
            status=Status.FAILED, started_at=now, finished_at=now, updated_at=now, error=str(exc)
        )
        if failed:
            logger.error("retention run %s failed: %s", run_id, exc)
            metrics.retention_run_finished(trigger=run.trigger, outcome=Status.FAILED, seconds=0.0, rows={})
            audit_record(
                by=Caller.system(tenant_id=run.tenant_id),
                action="retention.run_failed",
                target=run,
                changes={"error": str(exc)},
            )
        return None
    claimed = RetentionRun.objects.filter(pk=run.pk, status=run.status, updated_at=run.updated_at).update(
        status=Status.RUNNING,
        cutoff=cutoffs["readings"],
        cutoffs={name: value.isoformat() for name, value in cutoffs.items()},
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
    built_through: int,
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
        if table.model is SensorReading:
            where, params = _readings_guard(
                where=where, params=params, tenant_id=tenant_id, built_through=built_through
            )
        cursor.execute(f"DELETE FROM {qn(meta.db_table)} WHERE {where}", params)  # noqa: S608
        deleted = cursor.rowcount
        _record_progress(run_id=run_id, token=token, counter=table.counter, deleted=deleted)
    return deleted, boundary


def _readings_guard(*, where: str, params: list, tenant_id: UUID, built_through: int) -> tuple[str, list]:
    """Narrow a readings DELETE to rows already in the rollups and held by no hold.

    Holds are read under the tenant's row lock, which creating a hold takes too:
    a hold committed after this read waits for the batch, and the next batch
    sees it. Called inside the batch's transaction.
    """
    qn = connection.ops.quote_name
    meta = SensorReading._meta
    list(Tenant.objects.select_for_update().filter(pk=tenant_id).values_list("pk", flat=True))
    held, held_params = policies.held_sql(
        holds=policies.active_holds(tenant_id=tenant_id),
        ts_column=qn(meta.get_field("ts").column),
        sensor_column=qn(meta.get_field("sensor").column),
    )
    return f"{where} AND {qn('id')} <= %s AND NOT {held}", [*params, built_through, *held_params]


def _delete_expired(*, run: RetentionRun, token: UUID, table: _ExpiringTable, built_through: int) -> int:
    size = max(1, conf.batch_size())
    cutoff = datetime.fromisoformat(run.cutoffs[table.data_class]) if run.cutoffs else run.cutoff
    if table.model is SensorRollup:
        # A rollup stays while any part of its bucket is inside the window: the day
        # buckets' cutoff is a day earlier (hour buckets go by the hour before).
        return sum(
            _delete_rollups(run=run, token=token, table=table, cutoff=cutoff, bucket=bucket, size=size)
            for bucket in SensorRollup.Bucket
        )
    total, after = 0, None
    while True:
        deleted, after = _delete_batch(
            run_id=run.pk,
            token=token,
            table=table,
            tenant_id=run.tenant_id,
            cutoff=cutoff,
            after=after,
            size=size,
            built_through=built_through,
        )
        total += deleted
        if after is None:
            return total


def _delete_rollups(
    *, run: RetentionRun, token: UUID, table: _ExpiringTable, cutoff: datetime, bucket: int, size: int
) -> int:
    """Delete the tenant's `bucket`-wide rollups whose whole bucket ends at or before `cutoff`."""
    qn = connection.ops.quote_name
    meta = SensorRollup._meta
    # start + width <= cutoff  <=>  start < cutoff - width + 1 µs (both stores keep microseconds).
    bound = cutoff - timedelta(seconds=int(bucket)) + timedelta(microseconds=1)
    where = f"{qn('tenant_id')} = %s AND {qn('bucket')} = %s AND {qn('start')} < %s"
    params = [meta.get_field("tenant").get_db_prep_value(run.tenant_id, connection), int(bucket), _db_datetime(bound)]
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {qn(meta.db_table)} WHERE {qn('id')} IN "  # noqa: S608
                f"(SELECT {qn('id')} FROM {qn(meta.db_table)} WHERE {where} ORDER BY {qn('start')} LIMIT %s)",
                [*params, size],
            )
            deleted = cursor.rowcount
            _record_progress(run_id=run.pk, token=token, counter=table.counter, deleted=deleted)
        total += deleted
        if deleted < size:
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
        # Rollups first: a reading is deleted only once it is in them (`built_through`),
        # so a run whose rollups cannot be built deletes no reading.
        built_through = rollups.rollups_build()
        for table in _EXPIRING_TABLES:
            _delete_expired(run=run, token=token, table=table, built_through=built_through)
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
            by=Caller.system(tenant_id=run.tenant_id),
            action=f"retention.run_{status}",
            target=run,
            changes={
                "cutoff": run.cutoff.isoformat(),
                "readings_deleted": run.readings_deleted,
                "heartbeats_deleted": run.heartbeats_deleted,
                **({"error": error} if error else {}),
            },
        )
    metrics.retention_run_finished(
        trigger=run.trigger,
        outcome=status,
        seconds=(run.finished_at - run.started_at).total_seconds() if run.started_at else None,
        rows={"readings": run.readings_deleted, "heartbeats": run.heartbeats_deleted, "rollups": run.rollups_deleted},
        partitions=run.partitions_dropped,
        finished_at=run.finished_at.timestamp(),
    )
    logger.info(
        "retention run %s of tenant %s %s: %s readings, %s heartbeats deleted",
        run.pk,
        run.tenant_id,
        status,
        run.readings_deleted,
        run.heartbeats_deleted,
    )


# --- Retention policy and legal holds ---------------------------------------------------


def _days_error(*, name: str, days: int, tier: str, cap: int) -> str:
    return f"At most {cap} days: the {tier} tier's limit for {name}." if days > cap else ""


def retention_policy_errors(*, tier: str, values: dict[str, int | None]) -> dict[str, list[str]]:
    """What is wrong with windows (`{"readings": days or None, ...}`) under `tier`, by field: the API's
    and the admin's rule (raises errors.RuleViolation for a tier without windows)."""
    try:
        caps = policies.tier_caps(tier)
    except policies.UnknownTier as exc:
        raise errors.RuleViolation(str(exc)) from None
    problems = {}
    for name, days in values.items():
        if days is None:
            continue
        if days < 1:
            problems[f"{name}_days"] = ["At least 1 day."]
        elif days > caps[name]:
            problems[f"{name}_days"] = [_days_error(name=name, days=days, tier=tier, cap=caps[name])]
    return problems


@transaction.atomic
def retention_policy_update(
    *,
    by: Caller,
    readings_days: int | None,
    heartbeats_days: int | None,
    rollups_days: int | None,
) -> RetentionPolicy:
    """Set `by`'s tenant's windows (None: follow the tier); each at most the tier's window for its class."""
    tenant = Tenant.objects.get(pk=by.tenant_id)  # its tier: the caps
    values = {"readings": readings_days, "heartbeats": heartbeats_days, "rollups": rollups_days}
    problems = retention_policy_errors(tier=tenant.tier, values=values)
    if problems:
        raise ValidationError(problems)
    policy, _ = RetentionPolicy.objects.select_for_update().get_or_create(tenant=tenant)
    before = {f"{name}_days": getattr(policy, f"{name}_days") for name in values}
    for name, days in values.items():
        setattr(policy, f"{name}_days", days)
    policy.updated_at = timezone.now()
    policy.save()
    after = {f"{name}_days": days for name, days in values.items()}
    audit_record(
        by=by,
        action="retention_policy.update",
        target=policy,
        target_type="retention_policy",
        changes={"before": before, "after": after},
    )
    return policy


def retention_policy_clamp(*, by: Caller, tenant: Tenant) -> None:
    """After a tier change: lower explicit windows above the new tier's caps to them (audited)."""
    policy = RetentionPolicy.objects.select_for_update().filter(tenant=tenant).first()
    if policy is None or tenant.tier not in policies.tiers.tier_names():
        return
    caps = policies.tier_caps(tenant.tier)
    clamped = {}
    for name, cap in caps.items():
        days = getattr(policy, f"{name}_days")
        if days is not None and days > cap:
            clamped[f"{name}_days"] = {"from": days, "to": cap}
            setattr(policy, f"{name}_days", cap)
    if not clamped:
        return
    policy.updated_at = timezone.now()
    policy.save()
    audit_record(
        by=by,
        action="retention_policy.update",
        target=policy,
        target_type="retention_policy",
        changes={"clamped_to_tier": tenant.tier, **clamped},
    )


HOLD_NEEDS_A_REASON = "A hold needs a reason."
HOLD_ENDS_BEFORE_IT_STARTS = "Must be after `from`."
TOO_MANY_HOLDS = f"At most {policies.MAX_ACTIVE_HOLDS} active holds per tenant; release one first."


def retention_hold_problems(
    *, tenant_id: UUID, reason: str, starts_at: datetime, ends_at: datetime | None, machines: list[str] | None
) -> tuple[dict[str, list[str]], list[Machine]]:
    """What is wrong with a new hold, by the API's field names (`reason`, `to`, `machines`), and the
    tenant's machines it names: the API's and the admin's rule."""
    problems: dict[str, list[str]] = {}
    if not (reason or "").strip():
        problems["reason"] = [HOLD_NEEDS_A_REASON]
    if ends_at is not None and starts_at is not None and ends_at <= starts_at:
        problems["to"] = [HOLD_ENDS_BEFORE_IT_STARTS]
    machine_objects: list[Machine] = []
    if machines is not None:
        if not machines:
            problems["machines"] = ["Give at least one machine, or null for every machine."]
        else:
            wanted = list(dict.fromkeys(machines))
            found = {m.external_id: m for m in Machine.objects.for_tenant(tenant_id).filter(external_id__in=wanted)}
            unknown = [external_id for external_id in wanted if external_id not in found]
            if unknown:
                problems["machines"] = [f"Unknown machine: {external_id}." for external_id in unknown]
            machine_objects = [found[external_id] for external_id in wanted if external_id in found]
    return problems, machine_objects


def retention_hold_cap_reached(*, tenant_id: UUID) -> bool:
    """The tenant has as many active holds as it may (the service checks again under the tenant's lock)."""
    return RetentionHold.objects.for_tenant(tenant_id).filter(released_at__isnull=True).count() >= (
        policies.MAX_ACTIVE_HOLDS
    )


@transaction.atomic
def retention_hold_create(
    *,
    by: Caller,
    reason: str,
    starts_at: datetime,
    ends_at: datetime | None = None,
    machines: list[str] | None = None,
) -> RetentionHold:
    """Hold `by`'s tenant's raw readings in [starts_at, ends_at) of `machines` (external ids; None: all)."""
    reason = (reason or "").strip()
    problems, machine_objects = retention_hold_problems(
        tenant_id=by.tenant_id, reason=reason, starts_at=starts_at, ends_at=ends_at, machines=machines
    )
    if problems:
        raise ValidationError(problems)
    # The tenant's row lock: a retention batch reads holds under it (see _readings_guard),
    # and it serialises the count of active holds.
    Tenant.objects.select_for_update().filter(pk=by.tenant_id).exists()
    if retention_hold_cap_reached(tenant_id=by.tenant_id):
        raise ValidationError(TOO_MANY_HOLDS)
    hold = RetentionHold.objects.create(
        tenant_id=by.tenant_id,
        reason=reason,
        all_machines=machines is None,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=by.user,
    )
    hold.machines.set(machine_objects)
    audit_record(
        by=by,
        action="retention_hold.create",
        target=hold,
        target_type="retention_hold",
        changes={
            "reason": reason,
            "machines": None if machines is None else [m.external_id for m in machine_objects],
            "from": starts_at,
            "to": ends_at,
        },
    )
    return hold


@transaction.atomic
def retention_hold_release(*, by: Caller, hold: RetentionHold) -> RetentionHold:
    """Release a hold (kept in the list with `released_at`); releasing a released hold changes nothing."""
    hold = RetentionHold.objects.for_tenant(by.tenant_id).select_for_update().get(pk=hold.pk)
    if hold.released_at is not None:
        return hold
    hold.released_at = timezone.now()
    hold.released_by = by.user
    hold.save(update_fields=["released_at", "released_by"])
    audit_record(
        by=by,
        action="retention_hold.release",
        target=hold,
        target_type="retention_hold",
        changes={"released_at": hold.released_at},
    )
    return hold
