from functools import cached_property

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apikeys import ratelimit
from core import metrics
from core.caller import Caller, caller_of
from core.pagination import StandardPageNumberPagination
from core.permissions import ApiAccess, IsTenantAdmin, IsTenantAdminForWrites
from telemetry import selectors, services
from telemetry.api.filters import MachineFilter
from telemetry.api.pagination import ReadingCursorPagination
from telemetry.api.parsers import MAX_INGEST_BODY_BYTES, IngestJSONParser
from telemetry.api.serializers import (
    AggregateOutputSerializer,
    AggregateQuerySerializer,
    HeartbeatOutputSerializer,
    IngestAcceptedOutputSerializer,
    IngestErrorOutputSerializer,
    IngestInputSerializer,
    MachineCreateInputSerializer,
    MachineOutputSerializer,
    MachineQuerySerializer,
    MachineUpdateInputSerializer,
    ReadingOutputSerializer,
    ReadingsQuerySerializer,
    SensorInputSerializer,
    SensorOutputSerializer,
)
from telemetry.api.units import DisplayUnits
from telemetry.models import Machine, SensorReading, SensorRollup
from telemetry.rollups import rollups_build
from telemetry.services import MAX_BATCH_SIZE

# Ingest and heartbeat take API keys only.
API_KEY_AUTH = [{"apiKeyBearer": []}, {"apiKeyHeader": []}]
DETAIL = OpenApiResponse(
    response={"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
)

# --- Edge agents ----------------------------------------------------------------------


class IngestView(generics.GenericAPIView):
    """Push a batch of sensor readings (API key with scope `ingest`)."""

    permission_classes = [ApiAccess]
    required_scope = "ingest"
    allow_user_login = False
    parser_classes = [IngestJSONParser]
    serializer_class = IngestInputSerializer

    @extend_schema(
        operation_id="ingest_readings",
        summary="Push a batch of sensor readings",
        description=(
            f"1 to {MAX_BATCH_SIZE} readings, values in canonical units (°C, bar, mm/s, A, rpm). "
            "All or nothing: the first bad reading (unknown machine or sensor, value that is not a finite "
            "number or is outside its sensor kind's bounds (see `value`), ts without timezone, more than "
            "5 minutes in the future or before 1970, missing or unknown field) "
            "gives 400 naming its index, and nothing is stored. A reading already stored (same sensor "
            "and ts) is skipped, so a batch can be resent safely; within one batch the first of two "
            "readings with the same sensor and ts is kept. Readings older than the retention window are "
            f"accepted and removed by the next retention run. Bodies over {MAX_INGEST_BODY_BYTES} bytes "
            "get 413. JWT users get 403."
        ),
        request=IngestInputSerializer,
        auth=API_KEY_AUTH,
        responses={
            202: IngestAcceptedOutputSerializer,
            400: OpenApiResponse(
                IngestErrorOutputSerializer,
                description="The batch, or its first bad reading (by index), and why.",
                examples=[
                    OpenApiExample(
                        "Unknown sensor in reading 3",
                        value={"readings": {"3": {"sensor": ["Unknown sensor 'x' on machine 'm1'."]}}},
                    ),
                    OpenApiExample(
                        "Value of reading 0 outside its kind's bounds",
                        value={
                            "readings": {
                                "0": {"value": ["Must be between -273.15 and 5000 (°C) for a temperature sensor."]}
                            }
                        },
                    ),
                    OpenApiExample("Empty batch", value={"readings": ["A batch needs at least one reading."]}),
                ],
            ),
            401: DETAIL,
            403: DETAIL,
            409: OpenApiResponse(DETAIL.response, description="A sensor of the batch was deleted meanwhile."),
            413: DETAIL,
            429: OpenApiResponse(
                DETAIL.response,
                description=(
                    "The key's (or its tenant's) requests or readings per minute would be passed; nothing of "
                    "the batch is stored. `Retry-After` says when to retry."
                ),
            ),
        },
    )
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        readings = serializer.validated_data["readings"]
        api_key = request.user.api_key
        limits = ratelimit.effective_limits(api_key)
        if isinstance(readings, list) and len(readings) > limits.readings_per_minute:
            # Could never pass, so retrying it would be pointless: a 400, not a 429.
            raise ValidationError({"readings": [ratelimit.BATCH_TOO_LARGE.format(limit=limits.readings_per_minute)]})

        def admit(count: int):
            reservation = ratelimit.reserve_readings(api_key, count)
            return lambda: ratelimit.release_readings(reservation)

        accepted = services.readings_ingest(by=caller_of(request), readings=readings, admit=admit)
        return Response({"accepted": accepted}, status=status.HTTP_202_ACCEPTED)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        _count_ingest(request, response)
        return response


# An ingest answer's status -> why its readings were refused; 401/403 are counted as auth failures.
_INGEST_REFUSALS = {400: "invalid", 409: "conflict", 413: "too_large", 429: "rate_limited"}


def _count_ingest(request, response) -> None:
    if response.status_code == status.HTTP_202_ACCEPTED:
        metrics.readings_accepted(count=response.data["accepted"])
        return
    reason = _INGEST_REFUSALS.get(response.status_code)
    if reason is None:
        return
    # The batch's size if its body was parsed (not for a 413 or a parse error).
    data = getattr(request, "_full_data", None)
    readings = data.get("readings") if isinstance(data, dict) else None
    metrics.readings_refused(reason=reason, count=len(readings) if isinstance(readings, list) else 0)


_SERVER_TIME = serializers.DateTimeField()


class HeartbeatView(generics.GenericAPIView):
    """Edge agent heartbeat (API key with scope `agent`)."""

    permission_classes = [ApiAccess]
    required_scope = "agent"
    allow_user_login = False
    serializer_class = HeartbeatOutputSerializer

    @extend_schema(
        operation_id="agent_heartbeat",
        summary="Edge agent heartbeat",
        description=(
            "Records that the agent is alive (visible in the admin) and answers with the server's time, "
            "so an agent can check its clock, its key's effective rate `limits` and `backoff_seconds` "
            "(0 unless the key is at a limit). The optional headers are stored with the heartbeat. "
            "JWT users get 403."
        ),
        parameters=[
            OpenApiParameter(
                "X-Agent-Version", OpenApiTypes.STR, OpenApiParameter.HEADER, description="The agent's version."
            ),
            OpenApiParameter(
                "X-Agent-Hostname", OpenApiTypes.STR, OpenApiParameter.HEADER, description="The agent's host name."
            ),
        ],
        auth=API_KEY_AUTH,
        responses={200: HeartbeatOutputSerializer, 401: DETAIL, 403: DETAIL},
    )
    def get(self, request):
        heartbeat = services.heartbeat_record(
            by=caller_of(request),
            agent_version=request.headers.get("X-Agent-Version", ""),
            hostname=request.headers.get("X-Agent-Hostname", ""),
        )
        check = request.user.rate_check
        # HeartbeatOutputSerializer's shape, built directly: the serializer would cost a third of
        # the view's time on the hottest path (bench_hotpaths). Pinned by the heartbeat tests.
        data = {
            "status": "ok",
            "server_time": _SERVER_TIME.to_representation(heartbeat.received_at),
            "tenant_id": str(heartbeat.tenant_id),
            "key_id": str(heartbeat.api_key_id),
            "limits": check.limits.as_dict(),
            "backoff_seconds": ratelimit.backoff_seconds(check),
        }
        return Response(data)


# --- Machines -------------------------------------------------------------------------


class _CallerEndpoint(generics.GenericAPIView):
    """An endpoint whose reads are scoped by the caller: its tenant, a key's machines, a user's units."""

    @cached_property
    def by(self) -> Caller:
        return caller_of(self.request)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "units": DisplayUnits.for_caller(self.by)}

    def machines(self):
        """The caller's machines (a machine-scoped key: its own; out of scope is not found)."""
        return selectors.machine_list(tenant_id=self.by.tenant_id, machine_ids=selectors.machine_scope(by=self.by))


class _MachineEndpoint(_CallerEndpoint):
    queryset = Machine.objects.none()  # for the schema; rows come from selectors.machine_list
    serializer_class = MachineOutputSerializer
    # Any role reads; an admin writes. Keys: `read:machines` reads, `write:machines` writes.
    permission_classes = [IsTenantAdminForWrites]
    required_scope = "read:machines"
    required_write_scope = "write:machines"

    def get_queryset(self):
        return self.machines()


class MachineListView(_MachineEndpoint, generics.ListAPIView):
    pagination_class = StandardPageNumberPagination
    filterset_class = MachineFilter

    @extend_schema(
        summary="List machines",
        description="The tenant's machines with their sensors, by name. API key scope `read:machines`, or any role.",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Create a machine",
        description="Provision a machine with its sensors (admin, or API key scope `write:machines`). "
        "A duplicate external id or sensor key is a 400 naming the field. A machine-scoped key cannot "
        f'create machines (403 `{{"detail": "{services.MACHINE_SCOPED_CREATE}"}}`): the new machine '
        "would be outside its machines.",
        request=MachineCreateInputSerializer,
        responses={201: MachineOutputSerializer},
    )
    def post(self, request, *args, **kwargs):
        serializer = MachineCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        machine = services.machine_create(
            by=self.by,
            external_id=data["external_id"],
            name=data["name"],
            location=data["location"],
            sensors=[(sensor["key"], sensor["kind"]) for sensor in data["sensors"]],
        )
        machine = self.get_queryset().get(pk=machine.pk)
        return Response(self.get_serializer(machine).data, status=status.HTTP_201_CREATED)


class MachineDetailView(_MachineEndpoint, generics.RetrieveAPIView):
    @extend_schema(
        summary="A machine",
        description="Another tenant's machine is not found (404). API key scope `read:machines`, or any role.",
        responses={200: MachineOutputSerializer, 404: DETAIL},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Rename or move a machine",
        description="Change `name` and `location` (admin, or API key scope `write:machines`); "
        "the external id and tenant never change.",
        request=MachineUpdateInputSerializer,
        responses={200: MachineOutputSerializer, 404: DETAIL},
    )
    def patch(self, request, *args, **kwargs):
        machine = self.get_object()
        serializer = MachineUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.machine_update(by=self.by, machine=machine, **serializer.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=machine.pk)).data)

    @extend_schema(
        summary="Delete a machine",
        description="Delete the machine with its sensors and their readings (admin, or API key scope "
        "`write:machines`). The machine is gone at once (404, and its external id is free for a new "
        "machine); its sensors and readings are deleted in the background. A machine with readings "
        "under a legal hold cannot be deleted (409).",
        responses={204: None, 404: DETAIL, 409: DETAIL},
    )
    def delete(self, request, *args, **kwargs):
        services.machine_delete(by=self.by, machine=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class _MachineSensorsEndpoint(_CallerEndpoint):
    """A machine's sensors, written by an admin or an API key with `write:machines`."""

    queryset = Machine.objects.none()  # for the schema; rows come from selectors.machine_list
    serializer_class = SensorOutputSerializer
    permission_classes = [IsTenantAdmin]
    required_scope = "write:machines"

    def get_queryset(self):
        return self.machines()


class MachineSensorListView(_MachineSensorsEndpoint):
    @extend_schema(
        summary="Add a sensor to a machine",
        description="A duplicate key on the machine is a 400 on `key`.",
        request=SensorInputSerializer,
        responses={201: SensorOutputSerializer, 404: DETAIL},
    )
    def post(self, request, *args, **kwargs):
        machine = self.get_object()
        serializer = SensorInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sensor = services.sensor_create(by=self.by, machine=machine, **serializer.validated_data)
        return Response(self.get_serializer(sensor).data, status=status.HTTP_201_CREATED)


class MachineSensorDetailView(_MachineSensorsEndpoint):
    @extend_schema(
        summary="Delete a sensor",
        description="Delete the sensor and its readings. A sensor with readings under a legal hold "
        "cannot be deleted (409).",
        responses={204: None, 404: DETAIL, 409: DETAIL},
    )
    def delete(self, request, *args, **kwargs):
        sensor = selectors.sensor_get(machine=self.get_object(), key=kwargs["key"])
        services.sensor_delete(by=self.by, sensor=sensor)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Sensor data ----------------------------------------------------------------------


class _SensorDataEndpoint(_CallerEndpoint):
    """One machine's sensor data (`machine` = its id or external_id), in the caller's units."""

    permission_classes = [ApiAccess]
    required_scope = "read:sensors"
    query_serializer_class = MachineQuerySerializer
    filter_backends: list = []
    sensors_by_id: dict = {}

    @cached_property
    def query(self) -> dict:
        serializer = self.query_serializer_class(data=self.request.query_params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def get_sensors(self) -> tuple[Machine, list]:
        """The machine asked for and its sensors (the one `sensor` names, if the query has one)."""
        machine = selectors.machine_get(
            tenant_id=self.by.tenant_id, ref=self.query["machine"], machine_ids=selectors.machine_scope(by=self.by)
        )
        sensors = selectors.sensor_list(machine=machine, key=self.query.get("sensor"))
        self.sensors_by_id = {sensor.pk: sensor for sensor in sensors}
        return machine, sensors

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "sensors": self.sensors_by_id}


class _ReadingsEndpoint(_SensorDataEndpoint, generics.ListAPIView):
    """A list of readings of one machine: `readings()` says which."""

    serializer_class = ReadingOutputSerializer

    def readings(self):
        raise NotImplementedError

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return SensorReading.objects.none()
        return self.readings()


_READINGS_RESPONSES = {200: ReadingOutputSerializer(many=True), 400: OpenApiTypes.OBJECT, 404: DETAIL}


@extend_schema(
    summary="Sensor readings, newest first",
    description=(
        "Readings of one machine (`machine` = its id or external_id; required), optionally of one sensor, "
        "in [from, to). Cursor-paginated: follow `next` to go further back. For a logged-in user, temperature, "
        "pressure and vibration values are in that user's units; API keys get canonical units. Each item "
        "names its `unit`. An unknown or another tenant's machine, or an unknown sensor, is 404. "
        "API key scope `read:sensors`, or any role."
    ),
    parameters=[ReadingsQuerySerializer],
    responses=_READINGS_RESPONSES,
)
class ReadingListView(_ReadingsEndpoint):
    pagination_class = ReadingCursorPagination
    query_serializer_class = ReadingsQuerySerializer

    def readings(self) -> selectors.ReadingWindow:
        # Not a queryset: the window the paginator reads, sensor by sensor.
        _, sensors = self.get_sensors()
        return selectors.ReadingWindow(
            sensor_ids=tuple(sensor.pk for sensor in sensors), since=self.query.get("from"), until=self.query.get("to")
        )


@extend_schema(
    summary="The latest reading of each sensor of a machine",
    description=(
        "One item per sensor that has a reading, by sensor key; units as for readings. "
        "API key scope `read:sensors`, or any role."
    ),
    parameters=[MachineQuerySerializer],
    responses=_READINGS_RESPONSES,
)
class LatestReadingsView(_ReadingsEndpoint):
    pagination_class = None

    def readings(self) -> list[dict]:
        machine, _ = self.get_sensors()
        return [
            {"sensor_id": row["id"], "ts": row["latest_ts"], "value": row["latest_value"]}
            for row in selectors.reading_latest_list(machine=machine)
        ]


class AggregateView(_SensorDataEndpoint):
    serializer_class = AggregateOutputSerializer
    query_serializer_class = AggregateQuerySerializer

    @extend_schema(
        summary="Min, max, avg and count per time bucket",
        description=(
            "Beyond the product docs: one sensor's readings in [from, to) grouped into buckets of "
            "`1m`, `5m`, `15m`, `1h` or `1d` (aligned to the epoch, UTC), computed in the database, so "
            "a dashboard can draw a month without downloading it. `to` defaults to now and `from` to 24 "
            "hours before `to`; at most 10,000 buckets per request. Units as for readings. "
            "API key scope `read:sensors`, or any role."
        ),
        parameters=[AggregateQuerySerializer],
        responses={200: AggregateOutputSerializer, 400: OpenApiTypes.OBJECT, 404: DETAIL},
    )
    def get(self, request):
        query = self.query
        machine, (sensor,) = self.get_sensors()
        bucket_seconds = selectors.BUCKETS[query["bucket"]]
        window = {"sensor_id": sensor.pk, "kind": sensor.kind, "bucket_seconds": bucket_seconds}
        if bucket_seconds in SensorRollup.Bucket.values:
            if settings.CELERY_TASK_ALWAYS_EAGER:
                # Without a broker there is no beat to keep the rollups current: bring them up to
                # date here (a no-op when they are), without waiting for in-flight ingests.
                rollups_build(wait_seconds=0)
            buckets = selectors.reading_aggregates_with_rollups(
                tenant_id=machine.tenant_id,
                **window,
                since=query["from"],
                until=query["to"],
                raw_cutoff=selectors.raw_readings_cutoff(tenant_id=machine.tenant_id),
            )
        else:
            buckets = selectors.reading_aggregates(**window, since=query["from"], until=query["to"])
        units = self.get_serializer_context()["units"]
        data = {
            "machine_id": machine.pk,
            "sensor": sensor.key,
            "unit": units.unit(sensor.kind),
            "bucket": query["bucket"],
            "from": query["from"],
            "to": query["to"],
            "buckets": units.buckets(sensor.kind, buckets),
        }
        return Response(self.get_serializer(data).data)
