from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView, ListAPIView, RetrieveAPIView
from rest_framework.response import Response
from rest_framework.reverse import reverse

from core.http import client_ip
from core.permissions import IsTenantAdmin
from core.tenancy import TenantScopedMixin
from retention import selectors
from retention.api.serializers import (
    RetentionRunAcceptedSerializer,
    RetentionRunOutputSerializer,
    RetentionRunRequestSerializer,
)
from retention.models import RetentionRun
from retention.services import retention_run_request
from retention.tasks import retention_run_enqueue


@extend_schema(tags=["retention"])
class RetentionRunRequestView(GenericAPIView):
    """Start a cleanup of the caller's tenant: data older than the tier's window is deleted.

    Answers 202 with the run. If a run of the tenant is already queued or
    running, that run is returned instead of starting a second one. Without a
    broker configured the run is carried out before the response is sent.
    """

    permission_classes = [IsTenantAdmin]
    serializer_class = RetentionRunRequestSerializer

    @extend_schema(
        operation_id="retention_run_create",
        request=RetentionRunRequestSerializer,
        responses={
            202: OpenApiResponse(RetentionRunAcceptedSerializer, description="The run, new or already active."),
            400: OpenApiResponse(description="The body has a field; the request takes none."),
        },
    )
    def post(self, request):
        self.get_serializer(data=request.data).is_valid(raise_exception=True)
        run, created = retention_run_request(
            tenant=request.user.tenant,
            trigger=RetentionRun.Trigger.MANUAL,
            requested_by=request.user,
            client_ip=client_ip(request),
        )
        if created:
            retention_run_enqueue(run_id=run.id)
        # Without a broker the run has finished by now: answer with its real status.
        run.refresh_from_db(fields=["status"])
        location = reverse("retention-run-detail", kwargs={"run_id": run.id}, request=request)
        return Response(
            RetentionRunAcceptedSerializer(run).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location}
        )


@extend_schema(tags=["retention"])
class RetentionRunListView(TenantScopedMixin, ListAPIView):
    """The tenant's latest retention runs (at most 100), newest first, as a plain array."""

    permission_classes = [IsTenantAdmin]
    serializer_class = RetentionRunOutputSerializer
    queryset = RetentionRun.objects.all()

    def get_queryset(self):
        return super().get_queryset().order_by("-created_at", "-id")[: selectors.RUN_LIST_LIMIT]


@extend_schema(tags=["retention"])
class RetentionRunDetailView(TenantScopedMixin, RetrieveAPIView):
    """One retention run of the caller's tenant (another tenant's run: 404)."""

    permission_classes = [IsTenantAdmin]
    serializer_class = RetentionRunOutputSerializer
    queryset = RetentionRun.objects.all()
    lookup_url_kwarg = "run_id"
