from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView, ListAPIView, RetrieveAPIView
from rest_framework.response import Response
from rest_framework.reverse import reverse

from core.caller import caller_of
from core.permissions import IsTenantAdmin, IsTenantAdminForWrites
from core.serializers import validated_data
from retention import selectors
from retention.api.serializers import (
    RetentionHoldInputSerializer,
    RetentionHoldOutputSerializer,
    RetentionPolicyInputSerializer,
    RetentionPreviewOutputSerializer,
    RetentionPreviewQuerySerializer,
    RetentionRunAcceptedOutputSerializer,
    RetentionRunOutputSerializer,
    RetentionRunRequestInputSerializer,
)
from retention.models import RetentionHold, RetentionRun
from retention.services import (
    retention_hold_create,
    retention_hold_release,
    retention_policy_update,
    retention_run_start,
)


@extend_schema(tags=["retention"], summary="Run retention now")
class RetentionRunRequestView(GenericAPIView):
    """Start a cleanup of the caller's tenant: data older than the tier's window is deleted.

    Answers 202 with the run. If a run of the tenant is already queued or
    running, that run is returned instead of starting a second one. Without a
    broker configured the run is carried out before the response is sent.
    """

    permission_classes = [IsTenantAdmin]
    serializer_class = RetentionRunRequestInputSerializer
    # The broker down: 503, and no run is left queued (retention.services.retention_run_start).
    extra_error_codes = ("503",)

    @extend_schema(
        operation_id="retention_run_create",
        request=RetentionRunRequestInputSerializer,
        responses={
            202: OpenApiResponse(RetentionRunAcceptedOutputSerializer, description="The run, new or already active."),
            400: OpenApiResponse(description="The body has a field; the request takes none."),
        },
    )
    def post(self, request):
        self.get_serializer(data=request.data).is_valid(raise_exception=True)
        # Without a broker the run has finished by now: the answer has its real status.
        run, _ = retention_run_start(by=caller_of(request), trigger=RetentionRun.Trigger.MANUAL)
        location = reverse("retention-run-detail", kwargs={"run_id": run.id}, request=request)
        return Response(
            RetentionRunAcceptedOutputSerializer(run).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": location},
        )


@extend_schema(tags=["retention"], summary="List retention runs")
class RetentionRunListView(ListAPIView):
    """The tenant's latest retention runs (at most 100), newest first, as a plain array."""

    permission_classes = [IsTenantAdmin]
    serializer_class = RetentionRunOutputSerializer
    queryset = RetentionRun.objects.none()  # for the schema; rows come from the selector

    def get_queryset(self):
        return selectors.retention_run_list(tenant_id=caller_of(self.request).tenant_id)[: selectors.RUN_LIST_LIMIT]


@extend_schema(tags=["retention"], summary="A retention run")
class RetentionRunDetailView(RetrieveAPIView):
    """One retention run of the caller's tenant (another tenant's run: 404)."""

    permission_classes = [IsTenantAdmin]
    serializer_class = RetentionRunOutputSerializer
    queryset = RetentionRun.objects.none()  # for the schema; rows come from the selector
    lookup_url_kwarg = "run_id"

    def get_queryset(self):
        return selectors.retention_run_list(tenant_id=caller_of(self.request).tenant_id)


@extend_schema(tags=["retention"])
class RetentionPolicyView(GenericAPIView):
    """The tenant's retention windows, in days, per data class (raw readings, heartbeats, rollups).

    GET (any role) shows the effective days. PUT (admin) sets them: each null or
    absent (follow the tier) or 1 up to the tier's window for that class; above
    it → 400 naming the limit. A tier change lowers explicit values to the new caps.
    """

    permission_classes = [IsTenantAdminForWrites]
    # The answer has the request's shape, with the effective days.
    serializer_class = RetentionPolicyInputSerializer

    @extend_schema(summary="The retention policy", responses={200: RetentionPolicyInputSerializer})
    def get(self, request):
        return Response(selectors.retention_policy_get(tenant_id=caller_of(request).tenant_id))

    @extend_schema(
        summary="Change the retention policy",
        request=RetentionPolicyInputSerializer,
        responses={200: RetentionPolicyInputSerializer},
    )
    def put(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        by = caller_of(request)
        retention_policy_update(by=by, **serializer.validated_data)
        return Response(selectors.retention_policy_get(tenant_id=by.tenant_id))


@extend_schema(tags=["retention"])
class RetentionPreviewView(GenericAPIView):
    """Exact counts of what a retention run now would delete, per data class, and what holds keep.

    With `?tier=`, what it would delete under that tier (the tenant's policy clamped to it).
    """

    permission_classes = [IsTenantAdmin]
    serializer_class = RetentionPreviewOutputSerializer

    @extend_schema(
        summary="What a retention run would delete now",
        parameters=[RetentionPreviewQuerySerializer],
        responses={200: RetentionPreviewOutputSerializer},
    )
    def get(self, request):
        query = validated_data(RetentionPreviewQuerySerializer, request.query_params)
        tier = query.get("tier")
        preview = selectors.retention_preview(tenant_id=caller_of(request).tenant_id, tier=tier)
        return Response(self.get_serializer(preview).data)


@extend_schema(tags=["retention"])
class RetentionHoldListView(GenericAPIView):
    """Legal holds: raw readings they cover are never deleted. Released holds stay listed.

    POST `{"reason", "machines": null|[external ids], "from" (inclusive), "to" (optional,
    exclusive)}` → 201. At most 20 active holds per tenant.
    """

    permission_classes = [IsTenantAdmin]
    serializer_class = RetentionHoldOutputSerializer
    queryset = RetentionHold.objects.none()  # for the schema; the list comes from the selector

    @extend_schema(summary="List legal holds", responses={200: RetentionHoldOutputSerializer(many=True)})
    def get(self, request):
        holds = selectors.retention_hold_list(tenant_id=caller_of(request).tenant_id)
        return Response(self.get_serializer(holds, many=True).data)

    @extend_schema(
        summary="Place a legal hold",
        request=RetentionHoldInputSerializer,
        responses={201: RetentionHoldOutputSerializer},
    )
    def post(self, request):
        data = validated_data(RetentionHoldInputSerializer, request.data)
        hold = retention_hold_create(
            by=caller_of(request),
            reason=data["reason"],
            starts_at=data["from"],
            ends_at=data["to"],
            machines=data["machines"],
        )
        return Response(self.get_serializer(hold).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["retention"])
class RetentionHoldDetailView(GenericAPIView):
    """Release a hold (204). It stays in the list with `released_at`; another tenant's hold → 404."""

    permission_classes = [IsTenantAdmin]
    serializer_class = RetentionHoldOutputSerializer
    queryset = RetentionHold.objects.none()  # for the schema; rows come from the selector
    lookup_url_kwarg = "hold_id"

    def get_queryset(self):
        return selectors.retention_hold_list(tenant_id=caller_of(self.request).tenant_id)

    @extend_schema(summary="Release a legal hold", responses={204: None})
    def delete(self, request, hold_id):
        retention_hold_release(by=caller_of(request), hold=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
