from datetime import UTC, datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from core import errors
from retention import policies
from retention.models import RetentionHold, RetentionRun
from telemetry.models import AgentHeartbeat, SensorReading, SensorRollup
from tenants import tiers
from tenants.models import Tenant

# The runs listed by the API: enough history to see what happened, bounded.
RUN_LIST_LIMIT = 100


def _rollups_expired(*, tenant_id: UUID, cutoff: datetime) -> int:
    """Rollups whose whole bucket ends at or before `cutoff` (what a run deletes)."""
    total = 0
    for bucket in SensorRollup.Bucket:
        bound = cutoff - timedelta(seconds=int(bucket)) + timedelta(microseconds=1)
        total += SensorRollup.objects.filter(tenant_id=tenant_id, bucket=bucket, start__lt=bound).count()
    return total


def _held_expired_readings(*, tenant_id: UUID, cutoff: datetime) -> int:
    """Readings older than `cutoff` that an active hold keeps: one COUNT on the (tenant, ts) index."""
    holds = policies.active_holds(tenant_id=tenant_id)
    if not holds:
        return 0
    qn = connection.ops.quote_name
    meta = SensorReading._meta
    held, held_params = policies.held_sql(holds=holds, ts_column=qn("ts"), sensor_column=qn("sensor_id"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {qn(meta.db_table)} WHERE {qn('tenant_id')} = %s AND {qn('ts')} < %s AND {held}",  # noqa: S608
            [
                meta.get_field("tenant").get_db_prep_value(tenant_id, connection),
                connection.ops.adapt_datetimefield_value(cutoff),
                *held_params,
            ],
        )
        return cursor.fetchone()[0]


def retention_expired_counts(*, tenant_id: UUID, cutoffs: dict[str, datetime]) -> dict[str, dict[str, int]]:
    """What a run with `cutoffs` would delete, and the expired readings holds keep: exact counts."""
    expired_readings = SensorReading.objects.filter(tenant_id=tenant_id, ts__lt=cutoffs["readings"]).count()
    held = _held_expired_readings(tenant_id=tenant_id, cutoff=cutoffs["readings"]) if expired_readings else 0
    return {
        "would_delete": {
            "readings": expired_readings - held,
            "heartbeats": AgentHeartbeat.objects.filter(
                tenant_id=tenant_id, received_at__lt=cutoffs["heartbeats"]
            ).count(),
            "rollups": _rollups_expired(tenant_id=tenant_id, cutoff=cutoffs["rollups"]),
        },
        "held": {"readings": held},
    }


def retention_run_next_scheduled(*, now: datetime) -> datetime | None:
    """When the daily retention job runs next (from the beat schedule), or None if it is not scheduled."""
    entry = settings.CELERY_BEAT_SCHEDULE.get("retention-daily")
    if entry is None:
        return None
    schedule = entry["schedule"]
    # A crontab answers "how long until the next run after `now`".
    return now + schedule.remaining_estimate(now)


UNKNOWN_TIER = "Unknown tier {tier!r}; choose one of: {tiers}."


def retention_preview(*, tenant_id: UUID, tier: str | None = None, now: datetime | None = None) -> dict:
    """What a run now would delete for the tenant (or would, under `tier`, its policy clamped to it).

    An unknown `tier`, or a tenant tier without windows, is errors.RuleViolation on `tier`.
    """
    if tier is not None and tier not in tiers.tier_names():
        raise errors.RuleViolation({"tier": [UNKNOWN_TIER.format(tier=tier, tiers=", ".join(tiers.tier_names()))]})
    tenant = Tenant.objects.select_related("retention_policy").get(pk=tenant_id)
    now = now or timezone.now()
    try:
        windows = policies.effective_windows(tenant=tenant, tier=tier)
    except policies.UnknownTier as exc:
        raise errors.RuleViolation({"tier": [str(exc)]}) from None
    cutoffs = policies.cutoffs_for(windows=windows, now=now)
    return {
        "tier": tier or tenant.tier,
        "cutoffs": cutoffs,
        **retention_expired_counts(tenant_id=tenant.pk, cutoffs=cutoffs),
        "next_scheduled_run": retention_run_next_scheduled(now=now),
    }


def retention_policy_get(*, tenant_id: UUID) -> dict[str, int | None]:
    """The tenant's effective windows (days), as `{"readings_days", "heartbeats_days", "rollups_days"}`."""
    tenant = Tenant.objects.select_related("retention_policy").get(pk=tenant_id)
    try:
        windows = policies.effective_windows(tenant=tenant)
    except policies.UnknownTier:
        windows = {name: None for name in policies.tiers.DATA_CLASSES}
    return {f"{name}_days": days for name, days in windows.items()}


def raw_readings_cutoff(*, tenant_id: UUID) -> datetime:
    """Where the tenant's raw readings may already be gone: now minus its readings window.

    Registered with telemetry.selectors.raw_cutoff_providers (the aggregates answer
    from rollups before it). An unknown tier deletes nothing: the start of time.
    """
    tenant = Tenant.objects.select_related("retention_policy").get(pk=tenant_id)
    try:
        days = policies.effective_windows(tenant=tenant)["readings"]
    except policies.UnknownTier:
        return datetime.min.replace(tzinfo=UTC)
    return timezone.now() - timedelta(days=days)


def retention_run_list(*, tenant_id: UUID) -> QuerySet[RetentionRun]:
    """The tenant's runs, newest first (the API lists the first RUN_LIST_LIMIT)."""
    return RetentionRun.objects.for_tenant(tenant_id).order_by("-created_at", "-id")


def retention_hold_list(*, tenant_id: UUID) -> QuerySet[RetentionHold]:
    return RetentionHold.objects.for_tenant(tenant_id).prefetch_related("machines").order_by("-created_at", "id")


HELD_READINGS = "Readings of this {what} are under a legal hold; release the hold first."


def reading_held_reason(*, machine, sensor=None) -> str | None:
    """Why a machine's (or one sensor's) readings must stay, or None: an active hold covers some of them.

    Registered with telemetry.services.deletion_guards, so deleting a machine or a
    sensor over HTTP or in the admin never takes held readings with it.
    """
    holds = RetentionHold.objects.filter(tenant_id=machine.tenant_id, released_at__isnull=True).filter(
        Q(all_machines=True) | Q(machines=machine)
    )
    readings = (
        SensorReading.objects.filter(sensor_id=sensor.pk)
        if sensor
        else SensorReading.objects.filter(sensor__machine_id=machine.pk)
    )
    for hold in holds.distinct():
        window = readings.filter(ts__gte=hold.starts_at)
        if hold.ends_at is not None:
            window = window.filter(ts__lt=hold.ends_at)
        if window.exists():
            return HELD_READINGS.format(what="sensor" if sensor else "machine")
    return None
