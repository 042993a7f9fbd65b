import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from core.tenancy import TenantQuerySet, tenant_queryset

IDENTIFIER_MAX_LENGTH = 100


def validate_identifier(value: str) -> None:
    """What agents send as a machine's external_id or a sensor's key: no blanks, no control characters.

    Leading or trailing spaces would make two ids that look the same differ, and
    control characters have no place in a name an operator types or reads.
    """
    if not value or value != value.strip():
        raise ValidationError("Must not be blank or start or end with whitespace.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError("Must not contain control characters.")


class LiveMachineManager(models.Manager.from_queryset(TenantQuerySet)):
    """Machines not marked for deletion: every reader's machines (see telemetry.services.machine_delete)."""

    def get_queryset(self):
        return super().get_queryset().filter(deleting_since__isnull=True)


class Machine(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="machines")
    # What edge agents know the machine by.
    external_id = models.CharField(max_length=IDENTIFIER_MAX_LENGTH, validators=[validate_identifier])
    name = models.CharField(max_length=200)
    location = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set by DELETE /machines/{id}: the machine is gone for every reader (`objects`) and its
    # external id free, while a background job deletes its sensors, readings and row.
    deleting_since = models.DateTimeField(null=True, blank=True, editable=False)

    objects = LiveMachineManager()
    # Marked ones too: only the background purge reads them.
    all_objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # Its index (tenant, external_id) also serves ingest's lookup by external id. A machine
            # marked for deletion keeps its external id, without holding it.
            models.UniqueConstraint(
                fields=["tenant", "external_id"],
                condition=models.Q(deleting_since__isnull=True),
                name="telemetry_machine_external_id_unique",
            )
        ]
        indexes = [models.Index(fields=["tenant", "name", "id"], name="telemetry_machine_list_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"


class Sensor(models.Model):
    class Kind(models.TextChoices):
        TEMPERATURE = "temperature"
        PRESSURE = "pressure"
        VIBRATION = "vibration"
        CURRENT = "current"
        SPEED = "speed"
        OTHER = "other"

    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="sensors")
    key = models.CharField(max_length=IDENTIFIER_MAX_LENGTH, validators=[validate_identifier])
    kind = models.CharField(max_length=16, choices=Kind.choices)

    objects = tenant_queryset("machine__tenant").as_manager()

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["machine", "key"], name="telemetry_sensor_key_unique")]

    def __str__(self) -> str:
        return f"{self.machine.external_id}/{self.key}"

    @property
    def canonical_unit(self) -> str:
        return CANONICAL_UNITS[self.kind]


# The unit each kind's values are stored in (contract, Part 2). A user may choose another
# for temperature, pressure and vibration (settings_app.units converts into it); current
# and speed have one unit, `other` none.
CANONICAL_UNITS: dict[str, str] = {
    Sensor.Kind.TEMPERATURE: "celsius",
    Sensor.Kind.PRESSURE: "bar",
    Sensor.Kind.VIBRATION: "mm_s",
    Sensor.Kind.CURRENT: "A",
    Sensor.Kind.SPEED: "rpm",
    Sensor.Kind.OTHER: "",
}


# The values a reading of each kind may have, in its canonical unit (contract, Part 2):
# physics where it has a floor (absolute zero, vacuum), generous ceilings otherwise.
# Bounded values also keep every unit conversion and aggregate finite.
VALUE_BOUNDS: dict[str, tuple[float, float]] = {
    Sensor.Kind.TEMPERATURE: (-273.15, 5_000.0),
    Sensor.Kind.PRESSURE: (-1.01325, 10_000.0),
    Sensor.Kind.VIBRATION: (0.0, 10_000.0),
    Sensor.Kind.CURRENT: (-1e6, 1e6),
    Sensor.Kind.SPEED: (-1e6, 1e6),
    Sensor.Kind.OTHER: (-1e12, 1e12),
}


def value_bounds(kind: str) -> tuple[float, float]:
    """The bounds of a sensor kind; the widest for a kind this code does not know (a hand-edited row)."""
    return VALUE_BOUNDS.get(kind) or VALUE_BOUNDS[Sensor.Kind.OTHER]


def value_saturate(kind: str, value: float) -> float | None:
    """A stored value within its kind's bounds: one stored before the bounds existed is clamped, NaN is None."""
    low, high = value_bounds(kind)
    if value < low:
        return low
    if value > high:
        return high
    if value != value:  # NaN compares false with everything
        return None
    return value


class SensorReading(models.Model):
    """One value of one sensor at one time, in the canonical unit of its kind.

    The tenant is kept on the row so that retention deletes by (tenant, ts)
    without a join. Rows are written only by telemetry.services (one bulk
    statement per batch) and removed by retention and with their sensor.

    No foreign-key constraints in the database (db_constraint=False): their
    per-row triggers cost about two thirds of a bulk COPY's time (measured in
    bench/bench_hotpaths.py). Integrity is kept instead by ingest, which
    resolves and locks every sensor of a batch (telemetry.services), by the
    ORM's cascades, and by a database trigger that deletes a sensor's readings
    with the sensor, whoever deletes it (migration 0003).
    """

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    sensor = models.ForeignKey(
        Sensor, on_delete=models.CASCADE, related_name="readings", db_index=False, db_constraint=False
    )
    ts = models.DateTimeField()
    value = models.FloatField()

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            # Makes a resent reading a no-op (ON CONFLICT DO NOTHING), and is the
            # index for "newest readings of one sensor" (scanned backwards). The tenant
            # comes last: a sensor has one tenant, so this is as unique as (sensor, ts),
            # every read keeps its (sensor, ts) prefix, and a table distributed by tenant
            # (Citus) can enforce it (docs/notes/scale.md).
            models.UniqueConstraint(fields=["sensor", "ts", "tenant"], name="telemetry_reading_sensor_ts_tenant_unique")
        ]
        # Retention: "everything of a tenant older than T".
        indexes = [models.Index(fields=["tenant", "ts"], name="telemetry_reading_tenant_ts")]

    def __str__(self) -> str:
        return f"{self.sensor_id}@{self.ts.isoformat()}={self.value}"


class ReadingDayCount(models.Model):
    """How many readings a tenant has on one UTC day: the exact row counts a partition drop records.

    Kept by statement triggers on the readings table (PostgreSQL, migration 0009)
    that see every insert, delete and update, whoever makes it (ingest's COPY,
    retention, a sensor's cascade, raw SQL), so a maintenance drop reads its
    per-tenant row counts here instead of counting millions of rows under its
    locks. A day's count is the sum over `slot`s: each connection adds to its
    own slot (its backend pid modulo 16, in the triggers' SQL), so concurrent ingests of one tenant
    do not queue on one row; a slot alone means nothing and may go negative.
    Rows moved between partitions (a partition created over default-partition
    rows) keep their day, so no count changes. A bulk load with triggers off
    (session_replication_role = replica) must end with
    `telemetry.partitions.reading_day_counts_rebuild()`. Unused on SQLite,
    which has no partitions to drop.
    """

    pk = models.CompositePrimaryKey("tenant", "day", "slot")
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.DO_NOTHING, related_name="+", db_index=False, db_constraint=False
    )
    day = models.DateField()
    slot = models.SmallIntegerField()
    rows = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.day.isoformat()}[{self.slot}]: {self.rows}"


class AgentHeartbeat(models.Model):
    """An edge agent's heartbeat, made with its API key, with what the agent says about itself."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    api_key = models.ForeignKey("apikeys.ApiKey", on_delete=models.CASCADE, related_name="heartbeats", db_index=False)
    received_at = models.DateTimeField(default=timezone.now)
    agent_version = models.CharField(max_length=64, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        indexes = [
            # Retention: "everything of a tenant older than T".
            models.Index(fields=["tenant", "received_at"], name="telemetry_hb_tenant_time_idx"),
            # "The last heartbeat of each key" (admin).
            models.Index(fields=["api_key", "-received_at"], name="telemetry_hb_key_time_idx"),
        ]

    def __str__(self) -> str:
        return f"heartbeat of {self.api_key_id} at {self.received_at.isoformat()}"


class SensorRollup(models.Model):
    """min, max, sum and count of one sensor's readings in one hour or one day (UTC, epoch-aligned).

    Built incrementally from raw readings by telemetry.rollups, always before
    retention deletes the raw rows they summarise; kept for the tenant's
    rollup window. The average is sum / count (merging two partial buckets
    stays exact).
    """

    class Bucket(models.IntegerChoices):
        HOUR = 3600, "1h"
        DAY = 86400, "1d"

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    sensor = models.ForeignKey(Sensor, on_delete=models.CASCADE, related_name="rollups", db_index=False)
    bucket = models.PositiveIntegerField(choices=Bucket.choices)
    start = models.DateTimeField()
    min = models.FloatField()
    max = models.FloatField()
    sum = models.FloatField()
    count = models.BigIntegerField()

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            # The tenant leads: a distributed engine shards by it (docs/notes/scale.md).
            # Also the index of "one sensor's buckets in a range" (the aggregate endpoint).
            models.UniqueConstraint(
                fields=["tenant", "sensor", "bucket", "start"], name="telemetry_rollup_bucket_unique"
            )
        ]
        # Retention: "a tenant's rollups older than T".
        indexes = [models.Index(fields=["tenant", "start"], name="telemetry_rollup_tenant_start")]

    def __str__(self) -> str:
        return f"{self.sensor_id}@{self.start.isoformat()}/{self.bucket}s"

    @property
    def avg(self) -> float:
        return self.sum / self.count


class RollupCursor(models.Model):
    """How far the rollups have read the readings table, by reading id.

    `built_through`: every reading with an id at or below it is in the rollups.
    `next_through`: the highest committed id a pass saw while other transactions were
    writing; `next_xids`: those writers (their xids). A later pass reads up to
    `next_through` once none of them is running any more (`[]`: none was; null: unknown,
    not trusted), so it never waits for an in-flight ingest (telemetry.rollups).
    """

    name = models.CharField(max_length=32, primary_key=True)
    built_through = models.BigIntegerField(default=0)
    next_through = models.BigIntegerField(default=0)
    next_xids = models.JSONField(null=True, default=None, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"rollup cursor {self.name}: {self.built_through}"
