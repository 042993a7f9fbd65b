from django.contrib import admin

from audit.models import AuditEvent
from core.admin import TenantScopedReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedReadOnlyAdmin):
    """Read-only: the log is evidence, so nobody edits or deletes it here."""

    list_display = ["occurred_at", "tenant", "action", "actor_type", "actor_label", "target_label", "client_ip"]
    list_filter = ["tenant", "action", "actor_type"]
    search_fields = ["action", "actor_label", "target_label", "target_id", "=actor_id"]
    date_hierarchy = "occurred_at"
    list_select_related = ["tenant"]
    ordering = ["-occurred_at", "-id"]
    readonly_fields = [field.name for field in AuditEvent._meta.fields]
