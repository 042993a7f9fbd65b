from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from core.admin import TenantScopedReadOnlyAdmin, is_tenant_admin
from core.http import client_ip
from retention.models import RetentionHold, RetentionPolicy, RetentionRun
from retention.services import retention_run_request
from retention.tasks import retention_run_enqueue


@admin.register(RetentionRun)
class RetentionRunAdmin(TenantScopedReadOnlyAdmin):
    """Runs are a record of what happened: viewable, never edited by hand; a tenant admin
    can ask for one now. A tenant's retention window is its tier and its policy."""

    change_list_template = "admin/retention/retentionrun/change_list.html"
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

    def get_urls(self):
        run_now = self.admin_site.admin_view(require_POST(self.run_now_view))
        return [path("run-now/", run_now, name="retention_retentionrun_run_now"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_run_now": is_tenant_admin(request)}
        return super().changelist_view(request, extra_context)

    def run_now_view(self, request):
        """The same as POST /settings/admin/retention/run: a tenant admin's own tenant, once at a time."""
        if not is_tenant_admin(request):
            raise PermissionDenied
        run, created = retention_run_request(
            tenant=request.user.tenant,
            trigger=RetentionRun.Trigger.MANUAL,
            requested_by=request.user,
            client_ip=client_ip(request),
        )
        if created:
            retention_run_enqueue(run_id=run.id)
            run.refresh_from_db(fields=["status"])
            self.message_user(request, f"Retention run requested; it is {run.status}.", messages.SUCCESS)
        else:
            self.message_user(request, "A retention run is already under way for this tenant.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:retention_retentionrun_changelist"))


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(TenantScopedReadOnlyAdmin):
    """The tenant's retention windows, as PUT /settings/retention-policy sets them (changed there)."""

    list_display = ["tenant", "readings_days", "heartbeats_days", "rollups_days", "updated_at"]
    list_select_related = ["tenant"]
    fields = ["tenant", "readings_days", "heartbeats_days", "rollups_days", "updated_at"]
    readonly_fields = fields


@admin.register(RetentionHold)
class RetentionHoldAdmin(TenantScopedReadOnlyAdmin):
    """Legal holds, released ones too: the record of what was kept and why (made and released by the API)."""

    list_display = ["created_at", "tenant", "reason", "all_machines", "starts_at", "ends_at", "released_at"]
    list_filter = ["all_machines", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["reason"]
    ordering = ["-created_at", "id"]
    fields = [
        "id",
        "tenant",
        "reason",
        "all_machines",
        "machines",
        "starts_at",
        "ends_at",
        "created_at",
        "created_by",
        "released_at",
        "released_by",
    ]
    readonly_fields = fields
