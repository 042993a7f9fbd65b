from django.contrib import admin

from retention.models import RetentionRun


@admin.register(RetentionRun)
class RetentionRunAdmin(admin.ModelAdmin):
    """Runs are a record of what happened: viewable, never edited by hand.

    A tenant's retention window is its tier, edited on the tenant.
    """

    list_display = [
        "created_at",
        "tenant",
        "status",
        "trigger",
        "cutoff",
        "readings_deleted",
        "heartbeats_deleted",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status", "trigger", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["id", "tenant__name"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    readonly_fields = [
        "id",
        "tenant",
        "trigger",
        "requested_by",
        "status",
        "cutoff",
        "retention_days",
        "readings_deleted",
        "heartbeats_deleted",
        "created_at",
        "started_at",
        "finished_at",
        "updated_at",
        "attempts",
        "error",
    ]
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
