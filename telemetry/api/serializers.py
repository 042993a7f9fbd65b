from datetime import UTC, datetime, timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from core.serializers import EmptyQueryValueMixin, StrictSerializer
from telemetry.models import Machine, Sensor
from telemetry.selectors import BUCKETS
from telemetry.services import MAX_BATCH_SIZE

# --- Ingest -------------------------------------------------------------------------


@extend_schema_serializer(component_name="IngestReading")
class IngestReadingInputSerializer(StrictSerializer):
    """One reading as an agent sends it (documentation only: the service validates batches, unknown fields too)."""

    machine = serializers.CharField(help_text="The machine's external_id.")
    sensor = serializers.CharField(help_text="The sensor's key on that machine.")
    ts = serializers.DateTimeField(help_text="ISO 8601 with a timezone; at most 5 minutes in the future.")
    value = serializers.FloatField(
        help_text=(
            "A finite number in the canonical unit of the sensor's kind, within its bounds (inclusive): "
            "temperature -273.15 to 5,000 °C; pressure -1.01325 to 10,000 bar; vibration 0 to 10,000 mm/s; "
            "current ±1,000,000 A; speed ±1,000,000 rpm; other ±1e12. Outside → 400 naming the reading."
        )
    )


@extend_schema_field(IngestReadingInputSerializer(many=True))
class ReadingBatchField(serializers.Field):
    """Passed as parsed: checking 5,000 readings is the ingest service's job, in one pass."""

    def to_internal_value(self, data):
        return data


class IngestInputSerializer(StrictSerializer):
    readings = ReadingBatchField(help_text=f"1 to {MAX_BATCH_SIZE} readings.")


@extend_schema_serializer(component_name="IngestAccepted")
class IngestAcceptedOutputSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="The number of readings in the batch (resent ones included).")


@extend_schema_serializer(component_name="IngestError")
class IngestErrorOutputSerializer(serializers.Serializer):
    # Not required: an unknown top-level field or a non-object body is reported
    # under its own key (`{"x": ["Unknown field."]}`, `{"non_field_errors": [...]}`).
    readings = serializers.JSONField(
        required=False,
        help_text=(
            "Either a list of messages about the batch as a whole (missing, empty, too many), "
            'or an object with one key, the index of the first bad reading (a string, e.g. "3"), '
            "whose value maps each bad field of that reading to its messages."
        ),
    )


# --- Heartbeat ------------------------------------------------------------------------


@extend_schema_serializer(component_name="HeartbeatLimits")
class HeartbeatLimitsOutputSerializer(serializers.Serializer):
    requests_per_minute = serializers.IntegerField()
    readings_per_minute = serializers.IntegerField()


@extend_schema_serializer(component_name="Heartbeat")
class HeartbeatOutputSerializer(serializers.Serializer):
    status = serializers.CharField()
    server_time = serializers.DateTimeField()
    tenant_id = serializers.UUIDField()
    key_id = serializers.UUIDField()
    limits = HeartbeatLimitsOutputSerializer(help_text="The key's effective rate limits (its own, capped by the tier).")
    backoff_seconds = serializers.IntegerField(
        help_text="How long to wait before the next call: 0 unless the key is at one of its limits."
    )


# --- Machines -------------------------------------------------------------------------


class SensorOutputSerializer(serializers.ModelSerializer):
    unit = serializers.SerializerMethodField(help_text="The unit this caller gets values in; null for `other`.")

    class Meta:
        model = Sensor
        fields = ["key", "kind", "unit"]
        read_only_fields = fields

    def get_unit(self, sensor: Sensor) -> str | None:
        return self.context["units"].unit(sensor.kind)


class MachineOutputSerializer(serializers.ModelSerializer):
    sensors = SensorOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Machine
        fields = ["id", "name", "external_id", "location", "created_at", "sensors"]
        read_only_fields = fields


# --- Provisioning (admin JWT, or an API key with `write:machines`) ----------------------


class SensorInputSerializer(StrictSerializer):
    key = serializers.CharField(max_length=100, trim_whitespace=False, help_text="Unique per machine.")
    kind = serializers.ChoiceField(choices=Sensor.Kind.choices)


class MachineCreateInputSerializer(StrictSerializer):
    external_id = serializers.CharField(
        max_length=100, trim_whitespace=False, help_text="What edge agents know the machine by; unique per tenant."
    )
    name = serializers.CharField(max_length=200)
    location = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")
    sensors = SensorInputSerializer(many=True, required=False, default=list)


class MachineUpdateInputSerializer(StrictSerializer):
    """Only the name and location change; the external id and tenant never do."""

    name = serializers.CharField(max_length=200, required=False)
    location = serializers.CharField(max_length=200, allow_blank=True, required=False)


# --- Sensor data ----------------------------------------------------------------------


class QueryDateTimeField(serializers.DateTimeField):
    """A datetime in a query string, where an unencoded `+00:00` arrives as ` 00:00`.

    A value without a timezone is taken as UTC.
    """

    def to_internal_value(self, value):
        if isinstance(value, str) and " " in value.strip():
            head, _, tail = value.strip().rpartition(" ")
            if tail[:2].isdigit() and "T" in head:
                value = f"{head}+{tail}"
        return super().to_internal_value(value)


class MachineQuerySerializer(EmptyQueryValueMixin, serializers.Serializer):
    machine = serializers.CharField(max_length=100, help_text="The machine's id or its external_id.")


class ReadingsQuerySerializer(MachineQuerySerializer):
    sensor = serializers.CharField(
        max_length=100, required=False, help_text="A sensor key of the machine; all its sensors when omitted."
    )
    # `from` is a Python keyword, hence the locals() spelling.
    locals()["from"] = QueryDateTimeField(required=False, help_text="Inclusive lower bound of ts.")
    to = QueryDateTimeField(required=False, help_text="Exclusive upper bound of ts.")

    def validate(self, attrs):
        since, until = attrs.get("from"), attrs.get("to")
        if since is not None and until is not None and since >= until:
            raise serializers.ValidationError({"to": ["Must be later than `from`."]})
        return attrs


MAX_BUCKETS = 10_000
DEFAULT_AGGREGATE_WINDOW = timedelta(hours=24)


class AggregateQuerySerializer(ReadingsQuerySerializer):
    sensor = serializers.CharField(max_length=100, help_text="A sensor key of the machine.")
    bucket = serializers.ChoiceField(choices=list(BUCKETS), help_text="The width of each bucket.")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        until: datetime = attrs.get("to") or timezone.now()
        since: datetime | None = attrs.get("from")
        if since is None:
            try:
                since = until - DEFAULT_AGGREGATE_WINDOW
            except OverflowError:  # `to` within the first day of the calendar
                since = datetime.min.replace(tzinfo=UTC)
        if since >= until:
            raise serializers.ValidationError({"from": ["Must be earlier than `to` (default: now)."]})
        if (until - since).total_seconds() / BUCKETS[attrs["bucket"]] > MAX_BUCKETS:
            raise serializers.ValidationError(
                {"bucket": [f"At most {MAX_BUCKETS} buckets per request; use a wider bucket or a shorter range."]}
            )
        attrs["from"], attrs["to"] = since, until
        return attrs


class ReadingOutputSerializer(serializers.Serializer):
    """A reading in the caller's units. Built from value rows, not model instances."""

    machine_id = serializers.UUIDField()
    sensor = serializers.CharField(help_text="The sensor's key.")
    ts = serializers.DateTimeField()
    value = serializers.FloatField()
    unit = serializers.CharField(allow_null=True, help_text="null for sensors of kind `other`.")

    def to_representation(self, row):
        # Plain dict building: a page is up to 1,000 rows and this is most of its cost.
        try:
            sensors, units = self._sensors_and_units
        except AttributeError:
            sensors, units = self._sensors_and_units = (self.context["sensors"], self.context["units"])
        sensor: Sensor = sensors[row["sensor_id"]]
        return {
            "machine_id": str(sensor.machine_id),
            "sensor": sensor.key,
            "ts": iso_utc(row["ts"]),
            "value": units.value(sensor.kind, row["value"]),
            "unit": units.unit(sensor.kind),
        }


def iso_utc(value: datetime) -> str:
    """What DRF's DateTimeField gives for a UTC datetime (`...Z`), without its per-value overhead."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


@extend_schema_serializer(component_name="AggregateBucket")
class AggregateBucketOutputSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="Start of the bucket (inclusive).")
    min = serializers.FloatField()
    max = serializers.FloatField()
    avg = serializers.FloatField()
    count = serializers.IntegerField()
    source = serializers.ChoiceField(
        choices=["raw", "rollup"],
        help_text="`rollup`: the bucket (1h/1d) reaches past the raw retention window and comes whole "
        "from the rollups; `raw`: computed from the readings.",
    )


class AggregateOutputSerializer(serializers.Serializer):
    machine_id = serializers.UUIDField()
    sensor = serializers.CharField()
    unit = serializers.CharField(allow_null=True)
    bucket = serializers.CharField()
    locals()["from"] = serializers.DateTimeField()
    to = serializers.DateTimeField()
    buckets = AggregateBucketOutputSerializer(
        many=True, help_text="Oldest first; buckets without readings are left out."
    )
