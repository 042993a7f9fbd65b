import binascii
from base64 import b64decode, b64encode
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from apikeys import ratelimit
from core import metrics
from core.exceptions import Conflict
from core.http import client_ip
from core.pagination import NewestFirstCursorPagination, StandardPageNumberPagination
from core.permissions import ApiAccess, IsTenantAdmin, IsTenantAdminForWrites
from core.tenancy import TenantScopedMixin, request_tenant_id
from telemetry import selectors, services
from telemetry.api.parsers import MAX_INGEST_BODY_BYTES, IngestJSONParser
from telemetry.api.serializers import (
    AggregateOutputSerializer,
    AggregateQuerySerializer,
    HeartbeatSerializer,
    IngestAcceptedSerializer,
    IngestErrorSerializer,
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
from telemetry.models import Machine, Sensor, SensorReading, SensorRollup
from telemetry.rollups import rollups_build
from telemetry.services import MAX_BATCH_SIZE, BatchConflict, BatchInvalid, heartbeat_record, readings_ingest
from tenants.models import Tenant

BATCH_CONFLICT = "A machine or sensor of this batch was deleted while it was being stored; nothing was stored."
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
            202: IngestAcceptedSerializer,
            400: OpenApiResponse(
                IngestErrorSerializer,
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

        try:
            accepted = readings_ingest(
                tenant_id=request.user.tenant_id,
                readings=readings,
                machine_ids=request.user.machine_ids,
                admit=admit,
            )
        except BatchInvalid as exc:
            errors = exc.errors if exc.index is None else {str(exc.index): exc.errors}
            raise ValidationError({"readings": errors}) from None
        except BatchConflict:
            raise Conflict(BATCH_CONFLICT) from None
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
    serializer_class = HeartbeatSerializer

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
        responses={200: HeartbeatSerializer, 401: DETAIL, 403: DETAIL},
    )
    def get(self, request):
        heartbeat = heartbeat_record(
            tenant_id=request.user.tenant_id,
            api_key_id=request.user.pk,
            agent_version=request.headers.get("X-Agent-Version", ""),
            hostname=request.headers.get("X-Agent-Hostname", ""),
            client_ip=client_ip(request),
        )
        check = request.user.rate_check
        # HeartbeatSerializer's shape, built directly: the serializer would cost a third of
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


class MachineFilter(filters.FilterSet):
    # Bounded: an unbounded LIKE pattern is a 500 on SQLite ("pattern too complex").
    external_id = filters.CharFilter(field_name="external_id", max_length=100, help_text="Exact external_id.")
    search = filters.CharFilter(
        method="filter_search", max_length=200, help_text="Part of the name, external_id or location."
    )

    class Meta:
        model = Machine
        fields = ["external_id", "search"]

    def filter_search(self, queryset, name, value):
        term = value.strip()
        if not term:
            return queryset
        return queryset.filter(Q(name__icontains=term) | Q(external_id__icontains=term) | Q(location__icontains=term))


class _UnitsContextMixin:
    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["units"] = DisplayUnits.for_request(self.request)
        return context


def machine_scope(request) -> list[str] | None:
    """The machine ids a machine-scoped API key may see; None for every machine of the tenant."""
    return getattr(request.user, "machine_ids", None)


class _MachineEndpoint(_UnitsContextMixin, TenantScopedMixin):
    queryset = Machine.objects.prefetch_related("sensors")
    serializer_class = MachineOutputSerializer
    # Any role reads; an admin writes. Keys: `read:machines` reads, `write:machines` writes.
    permission_classes = [IsTenantAdminForWrites]
    required_scope = "read:machines"
    required_write_scope = "write:machines"

    def get_queryset(self):
        queryset = super().get_queryset()
        scope = machine_scope(self.request)
        # Out of a key's scope is not found (404), exactly like another tenant's machine.
        return queryset if scope is None else queryset.filter(id__in=scope)


def _principal_tenant(request):
    from tenants.models import Tenant

    return Tenant.objects.get(pk=request_tenant_id(request))


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
        "A duplicate external id or sensor key is a 400 naming the field.",
        request=MachineCreateInputSerializer,
        responses={201: MachineOutputSerializer},
    )
    def post(self, request, *args, **kwargs):
        serializer = MachineCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        machine = services.machine_create(
            tenant=_principal_tenant(request),
            external_id=data["external_id"],
            name=data["name"],
            location=data["location"],
            sensors=[(sensor["key"], sensor["kind"]) for sensor in data["sensors"]],
            actor=request.user,
            client_ip=client_ip(request),
        )
        machine = self.get_queryset().get(pk=machine.pk)
        return Response(self.get_serializer(machine).data, status=status.HTTP_201_CREATED)


def _deleting(action):
    try:
        return action()
    except services.ReadingsHeld as exc:
        raise Conflict(str(exc)) from None


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
        services.machine_update(
            machine=machine, actor=request.user, client_ip=client_ip(request), **serializer.validated_data
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=machine.pk)).data)

    @extend_schema(
        summary="Delete a machine",
        description="Delete the machine with its sensors and their readings (admin, or API key scope "
        "`write:machines`). A machine with readings under a legal hold cannot be deleted (409).",
        responses={204: None, 404: DETAIL, 409: DETAIL},
    )
    def delete(self, request, *args, **kwargs):
        machine = self.get_object()
        _deleting(lambda: services.machine_delete(machine=machine, actor=request.user, client_ip=client_ip(request)))
        return Response(status=status.HTTP_204_NO_CONTENT)


class _MachineSensorsEndpoint(_UnitsContextMixin, TenantScopedMixin, generics.GenericAPIView):
    """A machine's sensors, written by an admin or an API key with `write:machines`."""

    queryset = Machine.objects.prefetch_related("sensors")
    serializer_class = SensorOutputSerializer
    permission_classes = [IsTenantAdmin]
    required_scope = "write:machines"

    def get_queryset(self):
        queryset = super().get_queryset()
        scope = machine_scope(self.request)
        return queryset if scope is None else queryset.filter(id__in=scope)


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
        sensor = services.sensor_create(
            machine=machine, actor=request.user, client_ip=client_ip(request), **serializer.validated_data
        )
        return Response(self.get_serializer(sensor).data, status=status.HTTP_201_CREATED)


class MachineSensorDetailView(_MachineSensorsEndpoint):
    @extend_schema(
        summary="Delete a sensor",
        description="Delete the sensor and its readings. A sensor with readings under a legal hold "
        "cannot be deleted (409).",
        responses={204: None, 404: DETAIL, 409: DETAIL},
    )
    def delete(self, request, *args, **kwargs):
        machine = self.get_object()
        sensor = Sensor.objects.filter(machine=machine, key=kwargs["key"]).select_related("machine").first()
        if sensor is None:
            raise NotFound("The machine has no sensor with this key.")
        _deleting(lambda: services.sensor_delete(sensor=sensor, actor=request.user, client_ip=client_ip(request)))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Sensor data ----------------------------------------------------------------------


class ReadingCursorPagination(NewestFirstCursorPagination):
    """Keyset cursor over (ts, sensor_id), newest first, for a ReadingWindow.

    DRF's CursorPagination filters one queryset on its first ordering field and
    skips ties by offset; readings are instead fetched per sensor and merged
    (see selectors.reading_page), so the cursor carries the exact position of
    the last reading shown. The response shape is DRF's: next, previous, results.
    """

    def paginate_queryset(self, window: selectors.ReadingWindow, request, view=None):
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        position, newer = self.decode_position(request)
        rows = selectors.reading_page(window=window, limit=self.page_size + 1, after=position, newer=newer)
        more = len(rows) > self.page_size
        rows = rows[: self.page_size]
        if newer:
            rows.reverse()
            self.has_next, self.has_previous = True, more
        else:
            self.has_next, self.has_previous = more, position is not None and bool(rows)
        self.first = (rows[0]["ts"], rows[0]["sensor_id"]) if rows else None
        self.last = (rows[-1]["ts"], rows[-1]["sensor_id"]) if rows else None
        return rows

    def decode_position(self, request) -> tuple[tuple[datetime, int] | None, bool]:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None, False
        try:
            tokens = parse_qs(b64decode(encoded.encode("ascii"), validate=True).decode("ascii"), strict_parsing=True)
            ts = datetime.fromisoformat(tokens["t"][0])
            if ts.tzinfo is None:
                raise ValueError("naive position")
            ts = ts.astimezone(UTC)
            sensor_id = int(tokens["s"][0])
            if not 0 < sensor_id < 2**63:
                raise ValueError("sensor id out of range")
            newer = {"0": False, "1": True}[tokens["r"][0]]
        except (ValueError, KeyError, UnicodeError, OverflowError, binascii.Error):
            raise NotFound(self.invalid_cursor_message) from None
        return (ts, sensor_id), newer

    def _link(self, position: tuple[datetime, int] | None, newer: bool) -> str | None:
        if position is None:
            return None
        token = urlencode({"t": position[0].isoformat(), "s": position[1], "r": int(newer)})
        return replace_query_param(self.base_url, self.cursor_query_param, b64encode(token.encode()).decode())

    def get_next_link(self) -> str | None:
        return self._link(self.last, newer=False) if self.has_next else None

    def get_previous_link(self) -> str | None:
        return self._link(self.first, newer=True) if self.has_previous else None


class _SensorDataEndpoint(_UnitsContextMixin, generics.GenericAPIView):
    permission_classes = [ApiAccess]
    required_scope = "read:sensors"
    query_serializer_class = MachineQuerySerializer

    def get_query(self) -> dict:
        if not hasattr(self, "_query"):
            serializer = self.query_serializer_class(data=self.request.query_params)
            serializer.is_valid(raise_exception=True)
            self._query = serializer.validated_data
        return self._query

    def get_machine(self) -> Machine:
        try:
            return selectors.machine_resolve(
                tenant_id=request_tenant_id(self.request),
                ref=self.get_query()["machine"],
                machine_ids=machine_scope(self.request),
            )
        except Machine.DoesNotExist as exc:
            raise NotFound(str(exc)) from None

    def get_sensors(self, machine: Machine) -> list[Sensor]:
        sensors = list(machine.sensors.all())
        key = self.get_query().get("sensor")
        if key is None:
            return sensors
        chosen = [sensor for sensor in sensors if sensor.key == key]
        if not chosen:
            raise NotFound(f"Sensor {key!r} not found on machine {machine.external_id!r}.")
        return chosen


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
    responses={200: ReadingOutputSerializer(many=True), 400: OpenApiTypes.OBJECT, 404: DETAIL},
)
class ReadingListView(_SensorDataEndpoint, generics.ListAPIView):
    serializer_class = ReadingOutputSerializer
    pagination_class = ReadingCursorPagination
    query_serializer_class = ReadingsQuerySerializer
    filter_backends: list = []

    def get_queryset(self) -> selectors.ReadingWindow:
        # Not a queryset: the window the paginator reads, sensor by sensor.
        if getattr(self, "swagger_fake_view", False):
            return SensorReading.objects.none()
        machine = self.get_machine()
        sensors = self.get_sensors(machine)
        self.sensors_by_id = {sensor.pk: sensor for sensor in sensors}
        query = self.get_query()
        return selectors.ReadingWindow(
            sensor_ids=tuple(sensor.pk for sensor in sensors), since=query.get("from"), until=query.get("to")
        )

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["sensors"] = getattr(self, "sensors_by_id", {})
        return context


@extend_schema(
    summary="The latest reading of each sensor of a machine",
    description=(
        "One item per sensor that has a reading, by sensor key; units as for readings. "
        "API key scope `read:sensors`, or any role."
    ),
    parameters=[MachineQuerySerializer],
    responses={200: ReadingOutputSerializer(many=True), 400: OpenApiTypes.OBJECT, 404: DETAIL},
)
class LatestReadingsView(_SensorDataEndpoint, generics.ListAPIView):
    serializer_class = ReadingOutputSerializer
    pagination_class = None
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return SensorReading.objects.none()
        machine = self.get_machine()
        self.sensors_by_id = {sensor.pk: sensor for sensor in machine.sensors.all()}
        return [
            {"sensor_id": row["id"], "ts": row["latest_ts"], "value": row["latest_value"]}
            for row in selectors.latest_readings(machine=machine)
        ]

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["sensors"] = getattr(self, "sensors_by_id", {})
        return context


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
        query = self.get_query()
        machine = self.get_machine()
        (sensor,) = self.get_sensors(machine)
        units = self.get_serializer_context()["units"]
        bucket_seconds = selectors.BUCKETS[query["bucket"]]
        if bucket_seconds in SensorRollup.Bucket.values:
            buckets = selectors.aggregates_with_rollups(
                tenant_id=machine.tenant_id,
                sensor_id=sensor.pk,
                kind=sensor.kind,
                bucket_seconds=bucket_seconds,
                since=query["from"],
                until=query["to"],
                raw_cutoff=self._raw_cutoff(machine.tenant_id),
            )
        else:
            buckets = selectors.reading_aggregates(
                sensor_id=sensor.pk,
                kind=sensor.kind,
                bucket_seconds=bucket_seconds,
                since=query["from"],
                until=query["to"],
            )
        data = {
            "machine_id": machine.pk,
            "sensor": sensor.key,
            "unit": units.unit(sensor.kind),
            "bucket": query["bucket"],
            "from": query["from"],
            "to": query["to"],
            "buckets": [
                {
                    "start": bucket.start,
                    "min": units.value(sensor.kind, bucket.min),
                    "max": units.value(sensor.kind, bucket.max),
                    "avg": units.value(sensor.kind, bucket.avg),
                    "count": bucket.count,
                    "source": bucket.source,
                }
                for bucket in buckets
            ],
        }
        return Response(self.get_serializer(data).data)

    def _raw_cutoff(self, tenant_id) -> datetime:
        """Where the tenant's raw readings may already be gone: now minus its readings window."""
        from retention.policies import UnknownTier, effective_windows  # retention builds on telemetry

        tenant = Tenant.objects.select_related("retention_policy").get(pk=tenant_id)
        try:
            days = effective_windows(tenant=tenant)["readings"]
        except UnknownTier:
            return datetime.min.replace(tzinfo=UTC)  # nothing is deleted by an unknown tier
        if settings.CELERY_TASK_ALWAYS_EAGER:
            # Without a broker there is no beat to keep the rollups current: bring them up to
            # date here (a no-op when they are), without waiting for in-flight ingests.
            rollups_build(wait_seconds=0)
        return timezone.now() - timedelta(days=days)
