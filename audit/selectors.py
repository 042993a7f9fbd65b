from uuid import UUID

from django.db.models import QuerySet

from audit.models import AuditEvent


def audit_event_list(*, tenant_id: UUID | None) -> QuerySet[AuditEvent]:
    """The tenant's events, newest first; the id breaks ties so that pages never overlap."""
    return AuditEvent.objects.for_tenant(tenant_id).order_by("-occurred_at", "-id")
