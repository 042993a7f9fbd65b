from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response

from core.caller import caller_of
from core.pagination import StandardPageNumberPagination
from core.permissions import IsTenantAdmin
from core.serializers import StrictSerializer
from webhooks import selectors
from webhooks.api.serializers import WebhookDeliveryOutputSerializer, WebhookRedeliveredOutputSerializer
from webhooks.services import webhook_delivery_redeliver


@extend_schema_view(
    get=extend_schema(
        summary="Webhook deliveries",
        description=(
            "Admin only. The tenant's webhook deliveries, newest first, kept 30 days: attempts so far, the last "
            "HTTP status, when it was delivered, and the last error. `status` is `pending` (more attempts to "
            "come: at once, then 1 min, 5 min, 30 min, 2 h and 6 h later), `delivered` or `failed`. Each event's "
            "body, by `type`, is the `WebhookEvent` component (the `apiKeyEvents` callback of "
            "`PUT /settings/api-key-policy`)."
        ),
    )
)
class WebhookDeliveryListView(generics.ListAPIView):
    serializer_class = WebhookDeliveryOutputSerializer
    permission_classes = [IsTenantAdmin]
    pagination_class = StandardPageNumberPagination

    def get_queryset(self):
        return selectors.webhook_delivery_list(tenant_id=caller_of(self.request).tenant_id)


@extend_schema(
    summary="Send a webhook event again",
    description="Admin only. A new delivery of the same event (same `id` and body, signed afresh) → 202.",
    request=None,
    responses={202: WebhookRedeliveredOutputSerializer},
)
class WebhookRedeliverView(generics.GenericAPIView):
    serializer_class = WebhookRedeliveredOutputSerializer
    permission_classes = [IsTenantAdmin]
    lookup_url_kwarg = "delivery_id"

    def get_queryset(self):
        return selectors.webhook_delivery_list(tenant_id=caller_of(self.request).tenant_id)

    def post(self, request, *args, **kwargs):
        # No body is needed; one that is given must be empty (unknown fields are a 400).
        StrictSerializer(data=request.data or {}).is_valid(raise_exception=True)
        again = webhook_delivery_redeliver(by=caller_of(request), delivery=self.get_object())
        return Response({"id": again.id, "event_id": again.event_id}, status=status.HTTP_202_ACCEPTED)
