"""Retention policies and legal holds: what a tenant keeps, and for how long.

Writes (`retention_policy_update`, `retention_hold_create`, ...) live in
retention.services; this module holds the rules both the services and the
selectors read: the effective windows and the SQL condition of "held".
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.db import connection

from retention.models import RetentionHold, RetentionPolicy
from telemetry.models import Sensor
from tenants import tiers
from tenants.models import Tenant

MAX_ACTIVE_HOLDS = 20


class UnknownTier(Exception):
    """The tenant's tier has no windows configured: nothing can be deleted by it."""


def tier_caps(tier: str) -> dict[str, int]:
    if tier not in tiers.tier_names():
        raise UnknownTier(f"Tenant tier {tier!r} has no retention window configured.")
    return tiers.tier_windows(tier)


def explicit_windows(*, tenant: Tenant) -> dict[str, int | None]:
    if Tenant.retention_policy.is_cached(tenant):  # select_related("retention_policy")
        policy = getattr(tenant, "retention_policy", None)
    else:
        policy = RetentionPolicy.objects.filter(tenant_id=tenant.pk).first()
    return {name: getattr(policy, f"{name}_days", None) for name in tiers.DATA_CLASSES}


def effective_windows(*, tenant: Tenant, tier: str | None = None) -> dict[str, int]:
    """Days kept per data class: the tenant's value, or the tier's, never more than the tier's.

    With `tier`, the windows the tenant would have under that tier (its policy clamped to it).
    """
    caps = tier_caps(tier or tenant.tier)
    explicit = explicit_windows(tenant=tenant)
    return {name: min(explicit[name] or caps[name], caps[name]) for name in tiers.DATA_CLASSES}


def cutoffs_for(*, windows: dict[str, int], now: datetime) -> dict[str, datetime]:
    return {name: now - timedelta(days=days) for name, days in windows.items()}


@dataclass(frozen=True)
class HeldRange:
    """One active hold, as the deletes see it: a time range and, unless None, the machines it covers."""

    starts_at: datetime
    ends_at: datetime | None
    machine_ids: tuple[UUID, ...] | None


def _held_range(hold: RetentionHold) -> HeldRange:
    return HeldRange(
        starts_at=hold.starts_at,
        ends_at=hold.ends_at,
        machine_ids=None if hold.all_machines else tuple(sorted(m.pk for m in hold.machines.all())),
    )


def active_holds(*, tenant_id: UUID) -> list[HeldRange]:
    holds = RetentionHold.objects.filter(tenant_id=tenant_id, released_at__isnull=True).prefetch_related("machines")
    return [_held_range(hold) for hold in holds]


def active_holds_by_tenant(*, tenant_ids: list[UUID], since: datetime, until: datetime) -> dict[UUID, list[HeldRange]]:
    """The active holds of these tenants that overlap [since, until), by tenant (tenants without any left out)."""
    holds = (
        RetentionHold.objects.filter(tenant_id__in=tenant_ids, released_at__isnull=True, starts_at__lt=until)
        .exclude(ends_at__lte=since)
        .prefetch_related("machines")
    )
    by_tenant: dict[UUID, list[HeldRange]] = {}
    for hold in holds:
        by_tenant.setdefault(hold.tenant_id, []).append(_held_range(hold))
    return by_tenant


def held_sql(*, holds: list[HeldRange], ts_column: str, sensor_column: str) -> tuple[str, list]:
    """An SQL condition true for a reading any of `holds` keeps ("FALSE" without holds), and its parameters.

    A machine-scoped hold covers every sensor of those machines, found by a
    subquery on the sensor table (so a sensor added later is held too).
    """
    if not holds:
        return "FALSE", []
    qn = connection.ops.quote_name
    sensor_meta = Sensor._meta
    machine_column = qn(sensor_meta.get_field("machine").column)
    adapt = connection.ops.adapt_datetimefield_value
    uuid_prep = sensor_meta.get_field("machine").target_field.get_db_prep_value
    parts, params = [], []
    for hold in holds:
        condition = f"{ts_column} >= %s"
        params.append(adapt(hold.starts_at))
        if hold.ends_at is not None:
            condition += f" AND {ts_column} < %s"
            params.append(adapt(hold.ends_at))
        if hold.machine_ids is not None:
            marks = ", ".join(["%s"] * len(hold.machine_ids))
            condition += (
                f" AND {sensor_column} IN (SELECT {qn('id')} FROM {qn(sensor_meta.db_table)} "  # noqa: S608
                f"WHERE {machine_column} IN ({marks}))"
            )
            params.extend(uuid_prep(machine_id, connection) for machine_id in hold.machine_ids)
        parts.append(f"({condition})")
    return "(" + " OR ".join(parts) + ")", params
