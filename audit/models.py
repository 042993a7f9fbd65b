import uuid

from django.db import models

from core.tenancy import TenantQuerySet


class AuditEvent(models.Model):
    """One state-changing action, kept per tenant.

    The actor is stored by type, id and label rather than by foreign key, so the
    history survives the deletion of a user or key and `audit` depends on no app.
    `changes` never holds a secret or a password (see audit.services).
    """

    class ActorType(models.TextChoices):
        USER = "user"
        API_KEY = "api_key"
        SYSTEM = "system"
        ENROLLMENT_TOKEN = "enrollment_token"
        PUBLIC_REPORT = "public_report"  # someone who found a leaked credential (POST /public/...)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="audit_events")
    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.UUIDField(null=True, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=254, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [models.Index(fields=["tenant", "-occurred_at"], name="audit_tenant_time_idx")]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label or self.actor_type}"
