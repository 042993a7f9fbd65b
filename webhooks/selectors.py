"""Webhooks' reads: the tenant's endpoint and its deliveries."""

from uuid import UUID

from django.db.models import QuerySet

from webhooks.models import WebhookDelivery, WebhookEndpoint


def webhook_endpoint_get(*, tenant_id: UUID | None) -> WebhookEndpoint | None:
    """The tenant's endpoint, or None when it set no webhook URL."""
    return WebhookEndpoint.objects.for_tenant(tenant_id).first()


def webhook_endpoint_list(*, tenant_id: UUID | None = None) -> QuerySet[WebhookEndpoint]:
    """Every tenant's endpoint (the notices job), or only `tenant_id`'s."""
    endpoints = WebhookEndpoint.objects.order_by("tenant_id")
    return endpoints if tenant_id is None else endpoints.for_tenant(tenant_id)


def webhook_delivery_list(*, tenant_id: UUID | None) -> QuerySet[WebhookDelivery]:
    """The tenant's deliveries, newest first."""
    return WebhookDelivery.objects.for_tenant(tenant_id).order_by("-created_at")
