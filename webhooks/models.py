import uuid

from django.db import models

from core.tenancy import TenantQuerySet


class WebhookEndpoint(models.Model):
    """Where a tenant's events go, and the secret they are signed with (stored encrypted)."""

    tenant = models.OneToOneField(
        "tenants.Tenant", on_delete=models.CASCADE, primary_key=True, related_name="webhook_endpoint"
    )
    url = models.CharField(max_length=2048)
    secret_encrypted = models.TextField(editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Webhook endpoint of {self.tenant_id}"


class WebhookDelivery(models.Model):
    """One event on its way to the tenant's endpoint: the durable outbox and the delivery record.

    Written in the transaction that causes the event, so an event exists exactly
    when its cause was committed; sent later by the worker (or the embedded
    sender thread), never inside a request. A redelivery is a new row with the
    same `event_id` and body.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="webhook_deliveries")
    event_id = models.UUIDField(db_index=True)
    type = models.CharField(max_length=64)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A sender claims a row until then, so the worker and a sweep never send it twice at once.
    claimed_until = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhooks_due_idx"),
            models.Index(fields=["tenant", "-created_at"], name="webhooks_tenant_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id} ({self.status})"
