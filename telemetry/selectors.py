"""Telemetry reads. Every function takes the caller's tenant: nothing crosses tenants."""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db import connection
from django.db.models import (
    F,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Greatest, Least

from apikeys.models import ApiKey
from core import errors
from core.caller import Caller
from core.text import storable_text
from telemetry.models import (
    AgentHeartbeat,
    Machine,
    ReadingDayCount,
    Sensor,
    SensorReading,
    SensorRollup,
    value_bounds,
)

# Aggregation buckets: name -> seconds.
BUCKETS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}


def machine_scope(*, by: Caller) -> list[str] | None:
    """The machine ids a machine-scoped API key may touch; None for every machine of the tenant."""
    return by.principal.machine_ids if by.is_api_key else None


def machine_list(*, tenant_id: uuid.UUID, machine_ids: list[str] | None = None) -> QuerySet[Machine]:
    """The tenant's machines with their sensors, within `machine_ids` if given (a machine-scoped key)."""
    queryset = Machine.objects.for_tenant(tenant_id).prefetch_related("sensors")
    # Out of a key's scope is not found (404), exactly like another tenant's machine.
    return queryset if machine_ids is None else queryset.filter(id__in=machine_ids)


def machine_get(*, tenant_id: uuid.UUID, ref: str, machine_ids: list[str] | None = None) -> Machine:
    """The tenant's machine by id or by external_id (one query), within `machine_ids` if given.

    An external_id may itself look like a UUID; a machine whose id matches wins.
    Raises NotFound, also for another tenant's machine or one out of a key's
    scope (the same message: no hint that it exists).
    """
    condition = Q(external_id=ref)
    try:
        as_id = uuid.UUID(ref)
    except ValueError:
        as_id = None
    else:
        condition |= Q(pk=as_id)
    machines = list(machine_list(tenant_id=tenant_id, machine_ids=machine_ids).filter(condition)[:2])
    if not machines:
        raise errors.NotFound(f"Machine {ref!r} not found.")
    machines.sort(key=lambda machine: machine.pk != as_id)
    return machines[0]


def sensor_list(*, machine: Machine, key: str | None = None) -> list[Sensor]:
    """The machine's sensors (prefetched), or the one with `key`; NotFound if it has none with that key."""
    sensors = list(machine.sensors.all())
    if key is None:
        return sensors
    chosen = [sensor for sensor in sensors if sensor.key == key]
    if not chosen:
        raise errors.NotFound(f"Sensor {key!r} not found on machine {machine.external_id!r}.")
    return chosen


def sensor_get(*, machine: Machine, key: str) -> Sensor:
    """The sensor with `key` on `machine`, for a write; NotFound if there is none."""
    sensor = Sensor.objects.filter(machine=machine, key=key).select_related("machine").first()
    if sensor is None:
        raise errors.NotFound("The machine has no sensor with this key.")
    return sensor


# Where a tenant's raw readings may already be gone, asked of the app that deletes them
# (retention registers it in its AppConfig.ready), so telemetry never imports it:
# cutoff(tenant_id=...) -> the datetime before which raw rows may be missing.
raw_cutoff_providers: list = []


def raw_readings_cutoff(*, tenant_id: uuid.UUID) -> datetime:
    """The earliest time from which the tenant's raw readings are all there (the epoch's start without retention)."""
    cutoffs = [provider(tenant_id=tenant_id) for provider in raw_cutoff_providers]
    return max(cutoffs, default=datetime.min.replace(tzinfo=UTC))


@dataclass(frozen=True)
class ReadingWindow:
    """Which readings a query wants: some sensors' readings in [since, until)."""

    sensor_ids: tuple[int, ...]
    since: datetime | None = None
    until: datetime | None = None


def reading_list(
    *, sensor_ids: list[int], since: datetime | None = None, until: datetime | None = None
) -> QuerySet[SensorReading]:
    """Readings of the given sensors in [since, until), as dicts; order is the caller's."""
    queryset = SensorReading.objects.all()
    if len(sensor_ids) == 1:
        queryset = queryset.filter(sensor_id=sensor_ids[0])
    else:
        queryset = queryset.filter(sensor_id__in=sensor_ids)
    if since is not None:
        queryset = queryset.filter(ts__gte=since)
    if until is not None:
        queryset = queryset.filter(ts__lt=until)
    return queryset.values("id", "sensor_id", "ts", "value")


def reading_page(
    *, window: ReadingWindow, limit: int, after: tuple[datetime, int] | None = None, newer: bool = False
) -> list[dict]:
    """Up to `limit` readings of `window` beyond the keyset position `after` (ts, sensor_id).

    Newest first (older than `after`), or with `newer` oldest first (newer than
    `after`). Keyset, not offset: a deep page costs what the first one does.

    Each sensor's readings come from its own walk down the (sensor, ts) index,
    `limit` at most, merged by one UNION ALL: a single `sensor_id IN (...)`
    query would have the database gather and sort every reading of the machine
    in the window to return the newest hundred.
    """
    if not window.sensor_ids:
        return []
    parts = _reading_page_parts(window=window, limit=limit, after=after, newer=newer)
    if len(parts) == 1:
        return list(parts[0])
    sql, params = _merged_sql(parts, limit=limit, newer=newer)
    # raw() applies the backend's converters (SQLite keeps datetimes as text).
    return [
        {"id": row.id, "sensor_id": row.sensor_id, "ts": row.ts, "value": row.value}
        for row in SensorReading.objects.raw(sql, params)
    ]


def _reading_page_parts(
    *, window: ReadingWindow, limit: int, after: tuple[datetime, int] | None, newer: bool
) -> list[QuerySet]:
    parts = []
    for sensor_id in window.sensor_ids:
        queryset = reading_list(sensor_ids=[sensor_id], since=window.since, until=window.until)
        if after is not None:
            ts, after_sensor = after
            # `ts <= T` bounds the index walk; the exclusion drops at most the ties at T.
            if newer:
                queryset = queryset.filter(ts__gte=ts).exclude(ts=ts, sensor_id__lte=after_sensor)
            else:
                queryset = queryset.filter(ts__lte=ts).exclude(ts=ts, sensor_id__gte=after_sensor)
        parts.append(queryset.order_by(*(("ts", "sensor_id") if newer else ("-ts", "-sensor_id")))[:limit])
    return parts


def _merged_sql(parts: list[QuerySet], *, limit: int, newer: bool) -> tuple[str, list]:
    direction = "ASC" if newer else "DESC"
    compiled = [part.query.sql_with_params() for part in parts]
    # Only SQL compiled by the ORM and integers are spliced in; values stay parameters.
    sql = " UNION ALL ".join(f"SELECT * FROM ({part_sql}) AS p{i}" for i, (part_sql, _) in enumerate(compiled))  # noqa: S608
    sql += f" ORDER BY ts {direction}, sensor_id {direction} LIMIT {int(limit)}"
    return sql, [param for _, part_params in compiled for param in part_params]


def reading_latest_list(*, machine: Machine) -> list[dict]:
    """The latest reading of each sensor of `machine` that has one: one query.

    Two correlated subqueries per sensor, each one step down the (sensor, ts)
    index, so the cost does not grow with the number of readings.
    """
    newest = SensorReading.objects.filter(sensor_id=OuterRef("pk")).order_by("-ts")
    rows = (
        Sensor.objects.filter(machine=machine)
        .annotate(latest_ts=Subquery(newest.values("ts")[:1]), latest_value=Subquery(newest.values("value")[:1]))
        .filter(latest_ts__isnull=False)
        .order_by("key")
        .values("id", "key", "kind", "latest_ts", "latest_value")
    )
    return list(rows)


class EpochBucket(Func):
    """The start of the `seconds`-wide bucket of a datetime, as seconds since the epoch.

    Integer epoch arithmetic is the same on PostgreSQL and SQLite and, unlike
    date_trunc, has 5- and 15-minute buckets.
    """

    output_field = IntegerField()

    def __init__(self, expression, seconds: int):
        self.seconds = int(seconds)
        super().__init__(expression)

    def as_sql(self, compiler, connection, **extra_context):  # pragma: no cover - every backend has its own
        raise NotImplementedError(f"EpochBucket is not implemented for {connection.vendor}.")

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        seconds = self.seconds
        # date_part is double precision; EXTRACT is numeric, whose arithmetic was most of an
        # aggregate's time (65 against 22 ms for 43,200 rows). Exact for bucket starts: a whole
        # number of seconds divides exactly, and a time 1 µs before a bucket's start still
        # falls below it for every width in BUCKETS.
        return f"(FLOOR(date_part('epoch', {sql}) / {seconds}) * {seconds})::bigint", params

    def as_sqlite(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        seconds = self.seconds
        # Timestamps before 1970 do not occur in telemetry; integer division is then a floor.
        return f"((CAST(strftime('%%s', {sql}) AS INTEGER) / {seconds}) * {seconds})", params


@dataclass(frozen=True)
class Bucket:
    start: datetime
    min: float
    max: float
    avg: float
    count: int
    source: str = "raw"  # or "rollup"


def reading_aggregates(
    *, sensor_id: int, kind: str, bucket_seconds: int, since: datetime, until: datetime
) -> list[Bucket]:
    """Min, max, avg and count per time bucket, computed in the database, oldest first.

    Values are clamped to their kind's bounds first (a no-op for anything ingest
    accepted): a sum of values stored before the bounds existed could overflow a
    double, which PostgreSQL refuses ("value out of range") and SQLite makes infinite.

    One query: the range's rows from the (sensor, ts) index, grouped in a hash
    table, never sorted (see `_aggregate_sql`); the buckets (at most the
    serializer's MAX_BUCKETS) are put in order here.
    """
    sql, params = _aggregate_sql(
        sensor_id=sensor_id, kind=kind, bucket_seconds=bucket_seconds, since=since, until=until
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    rows.sort(key=lambda row: row[0])
    return [
        Bucket(start=datetime.fromtimestamp(bucket, tz=UTC), min=low, max=high, avg=avg, count=count)
        for bucket, low, high, avg, count in rows
    ]


def _aggregate_sql(
    *, sensor_id: int, kind: str, bucket_seconds: int, since: datetime, until: datetime
) -> tuple[str, list]:
    """The aggregate's SQL: the in-range rows (ORM-built) grouped by an outer query.

    PostgreSQL estimates the groups of `GROUP BY <expression of ts>` as the
    distinct timestamps (every row), so it chose to sort all the range's rows
    (43,200 rows, 3.8 MB for 30 days at 1 h) and group them in order. Grouped
    outside a subquery that the planner may not flatten (`OFFSET 0`), the
    bucket has no statistics, the estimate is PostgreSQL's default of 200
    groups and the plan is a HashAggregate over the index scan: no sort (pinned
    by telemetry/tests/test_postgres.py). No ORDER BY either: Python orders
    the buckets.
    """
    low, high = value_bounds(kind)
    in_range = (
        SensorReading.objects.filter(sensor_id=sensor_id, ts__gte=since, ts__lt=until)
        .order_by()
        .annotate(
            bucket=EpochBucket(F("ts"), bucket_seconds),
            clamped=Least(Greatest(Cast("value", FloatField()), Value(low)), Value(high)),
        )
        .values("bucket", "clamped")
    )
    inner, params = in_range.query.sql_with_params()
    fence = " OFFSET 0" if connection.vendor == "postgresql" else ""
    sql = (
        "SELECT bucket, MIN(clamped), MAX(clamped), AVG(clamped), COUNT(*) "  # noqa: S608 - ORM-built SQL
        f"FROM ({inner}{fence}) AS in_range GROUP BY bucket"
    )
    return sql, list(params)


def _bucket_floor(value: datetime, seconds: int) -> datetime:
    epoch = int(value.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def _bucket_ceil(value: datetime, seconds: int) -> datetime:
    floor = _bucket_floor(value, seconds)
    return floor if floor == value else datetime.fromtimestamp(int(floor.timestamp()) + seconds, tz=UTC)


def reading_aggregates_with_rollups(
    *,
    tenant_id: uuid.UUID,
    sensor_id: int,
    kind: str,
    bucket_seconds: int,
    since: datetime,
    until: datetime,
    raw_cutoff: datetime,
) -> list[Bucket]:
    """1 h / 1 d buckets: from the rollups where any part of a bucket is older than `raw_cutoff`, else raw.

    Raw rows older than the cutoff may be gone (retention), so those buckets come
    whole from the rollups, which are built before raw rows are deleted. At most
    two queries: one on the rollups' (tenant, sensor, bucket, start) index and one
    raw aggregate.
    """
    raw_from = max(since, _bucket_ceil(raw_cutoff, bucket_seconds))
    buckets: list[Bucket] = []
    if since < raw_from:
        rollups = SensorRollup.objects.filter(
            tenant_id=tenant_id,
            sensor_id=sensor_id,
            bucket=bucket_seconds,
            start__gte=_bucket_floor(since, bucket_seconds),
            start__lt=min(raw_from, until),
        ).order_by("start")
        buckets = [
            Bucket(start=start, min=low, max=high, avg=total / count, count=count, source="rollup")
            for start, low, high, total, count in rollups.values_list("start", "min", "max", "sum", "count")
        ]
    if raw_from < until:
        buckets += reading_aggregates(
            sensor_id=sensor_id, kind=kind, bucket_seconds=bucket_seconds, since=raw_from, until=until
        )
    return buckets


def reading_day_counts(*, start: datetime, end: datetime) -> dict[tuple[uuid.UUID, date], int]:
    """Readings per (tenant, UTC day) for the days of [start, end), days without any left out (PostgreSQL)."""
    rows = (
        ReadingDayCount.objects.filter(day__gte=start.astimezone(UTC).date(), day__lt=end.astimezone(UTC).date())
        .values_list("tenant_id", "day")
        .annotate(total=Sum("rows"))
    )
    return {(tenant_id, day): total for tenant_id, day, total in rows if total}


def heartbeat_latest_per_key() -> QuerySet[AgentHeartbeat]:
    """The newest heartbeat of every API key that has sent one (for the admin).

    Starts from the keys (few) and takes one step down the (api_key, received_at)
    index for each, rather than scanning the heartbeat history.
    """
    newest_id = Subquery(
        AgentHeartbeat.objects.filter(api_key_id=OuterRef("pk")).order_by("-received_at").values("id")[:1]
    )
    latest_ids = ApiKey.objects.annotate(latest_id=newest_id).filter(latest_id__isnull=False).values("latest_id")
    return AgentHeartbeat.objects.filter(id__in=Subquery(latest_ids))


class MachineDirectory:
    """What apikeys needs to know of machines for machine-scoped keys (registered in telemetry.apps)."""

    def ids_by_external_id(self, *, tenant_id: uuid.UUID, external_ids) -> dict[str, uuid.UUID]:
        # A name the database cannot hold (NUL, a lone surrogate) is no machine's: unknown, not a 500.
        names = [name for name in external_ids if storable_text(name)]
        return dict(Machine.objects.filter(tenant_id=tenant_id, external_id__in=names).values_list("external_id", "id"))

    def external_ids_by_id(self, *, ids) -> dict[str, str]:
        return {
            str(machine_id): external_id
            for machine_id, external_id in Machine.objects.filter(id__in=list(ids)).values_list("id", "external_id")
        }
