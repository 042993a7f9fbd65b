from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response

from core.http import client_ip
from core.pagination import StandardPageNumberPagination
from core.permissions import IsTenantAdmin
from core.serializers import StrictSerializer
from core.tenancy import TenantScopedMixin
from webhooks.api.serializers import RedeliveredSerializer, WebhookDeliverySerializer
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_delivery_redeliver


@extend_schema_view(
    get=extend_schema(
        summary="Webhook deliveries",
        description=(
            "Admin only. The tenant's webhook deliveries, newest first, kept 30 days: attempts so far, the last "
            "HTTP status, when it was delivered, and the last error. `status` is `pending` (more attempts to "
            "come: at once, then 1 min, 5 min, 30 min, 2 h and 6 h later), `delivered` or `failed`."
        ),
    )
)
class WebhookDeliveryListView(TenantScopedMixin, generics.ListAPIView):
    queryset = WebhookDelivery.objects.order_by("-created_at")
    serializer_class = WebhookDeliverySerializer
    permission_classes = [IsTenantAdmin]
    pagination_class = StandardPageNumberPagination


@extend_schema(
    summary="Send a webhook event again",
    description="Admin only. A new delivery of the same event (same `id` and body, signed afresh) → 202.",
    request=None,
    responses={202: RedeliveredSerializer},
)
class WebhookRedeliverView(TenantScopedMixin, generics.GenericAPIView):
    queryset = WebhookDelivery.objects.all()
    serializer_class = RedeliveredSerializer
    permission_classes = [IsTenantAdmin]
    lookup_url_kwarg = "delivery_id"

    def post(self, request, *args, **kwargs):
        # No body is needed; one that is given must be empty (unknown fields are a 400).
        StrictSerializer(data=request.data or {}).is_valid(raise_exception=True)
        again = webhook_delivery_redeliver(delivery=self.get_object(), actor=request.user, client_ip=client_ip(request))
        return Response({"id": again.id, "event_id": again.event_id}, status=status.HTTP_202_ACCEPTED)
