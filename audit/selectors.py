from django.db.models import QuerySet

from audit.models import AuditEvent


def audit_events() -> QuerySet[AuditEvent]:
    """Every event, newest first; the id breaks ties so that pages never overlap."""
    return AuditEvent.objects.order_by("-occurred_at", "-id")
