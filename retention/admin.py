from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from core import errors
from core.admin import ServiceBackedAdmin, TenantScopedReadOnlyAdmin, is_tenant_admin
from core.admin_site import is_platform_staff
from core.caller import Caller, caller_of
from retention import services
from retention.models import RetentionHold, RetentionPolicy, RetentionRun


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
        try:
            run, created = services.retention_run_start(by=caller_of(request), trigger=RetentionRun.Trigger.MANUAL)
        except errors.Unavailable as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            if created:
                self.message_user(request, f"Retention run requested; it is {run.status}.", messages.SUCCESS)
            else:
                self.message_user(request, "A retention run is already under way for this tenant.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:retention_retentionrun_changelist"))


_DATA_CLASSES = ("readings", "heartbeats", "rollups")


class RetentionPolicyForm(forms.ModelForm):
    class Meta:
        model = RetentionPolicy
        fields = ["tenant", "readings_days", "heartbeats_days", "rollups_days"]
        labels = {
            "readings_days": "Raw readings (days)",
            "heartbeats_days": "Heartbeats (days)",
            "rollups_days": "Rollups (days)",
        }
        help_texts = {name: "Empty: follow the tier's window." for name in labels}

    def clean(self):
        cleaned = super().clean()
        tenant = cleaned.get("tenant") or getattr(self.instance, "tenant", None)
        if tenant is None or any(f"{name}_days" in self.errors for name in _DATA_CLASSES):
            return cleaned
        # The service's own rule, shown on the form rather than raised when saving.
        try:
            problems = services.retention_policy_errors(
                tier=tenant.tier, values={name: cleaned.get(f"{name}_days") for name in _DATA_CLASSES}
            )
        except errors.RuleViolation as exc:
            raise forms.ValidationError(exc.message) from None
        for field, field_messages in problems.items():
            for message in field_messages:
                self.add_error(field, message)
        return cleaned


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(ServiceBackedAdmin):
    """The tenant's retention windows, as PUT /settings/retention-policy sets them: each empty
    (follow the tier) or at most the tier's window, changed through the same service. A tenant
    has one policy: adding one when it exists sets that one, as the PUT does."""

    form = RetentionPolicyForm
    tenant_admin_permissions = frozenset({"view", "add", "change"})
    list_display = ["tenant", "readings_days", "heartbeats_days", "rollups_days", "updated_at"]
    list_select_related = ["tenant"]
    fields = ["tenant", "readings_days", "heartbeats_days", "rollups_days", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # empty windows follow the tier: a policy is emptied, never deleted

    def save_through_service(self, request, form, *, by: Caller, change: bool) -> RetentionPolicy:
        data = form.cleaned_data
        return services.retention_policy_update(
            by=by,
            readings_days=data.get("readings_days"),
            heartbeats_days=data.get("heartbeats_days"),
            rollups_days=data.get("rollups_days"),
        )


# The API's field names (services.retention_hold_problems) -> the form's.
_HOLD_FIELDS = {"reason": "reason", "to": "ends_at", "machines": "machines"}


class RetentionHoldForm(forms.ModelForm):
    class Meta:
        model = RetentionHold
        fields = ["tenant", "reason", "machines", "starts_at", "ends_at"]
        labels = {"starts_at": "From (inclusive)", "ends_at": "To (exclusive)"}
        help_texts = {"machines": "None chosen: every machine of the tenant."}

    def machine_external_ids(self) -> list[str] | None:
        machines = self.cleaned_data.get("machines")
        return [machine.external_id for machine in machines] if machines else None

    def clean(self):
        cleaned = super().clean()
        tenant_id = cleaned["tenant"].pk if cleaned.get("tenant") else self.instance.tenant_id
        if tenant_id is None or cleaned.get("starts_at") is None:
            return cleaned
        # The service's own rules, shown on the form rather than raised when saving.
        problems, _ = services.retention_hold_problems(
            tenant_id=tenant_id,
            reason=cleaned.get("reason") or "",
            starts_at=cleaned["starts_at"],
            ends_at=cleaned.get("ends_at"),
            machines=self.machine_external_ids(),
        )
        for field, field_messages in problems.items():
            if _HOLD_FIELDS[field] in self.errors:
                continue  # Django's own message for it already says what is wrong
            for message in field_messages:
                self.add_error(_HOLD_FIELDS[field], message)
        if services.retention_hold_cap_reached(tenant_id=tenant_id):
            raise forms.ValidationError(services.TOO_MANY_HOLDS)
        return cleaned


@admin.register(RetentionHold)
class RetentionHoldAdmin(ServiceBackedAdmin):
    """Legal holds, released ones too: the record of what was kept and why. Placed here or by
    the API, through the same service; released (never deleted) with the "Release" action."""

    form = RetentionHoldForm
    tenant_admin_permissions = frozenset({"view", "add"})
    list_display = ["created_at", "tenant", "reason", "all_machines", "starts_at", "ends_at", "released_at"]
    list_filter = ["all_machines", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["reason"]
    ordering = ["-created_at", "id"]
    actions = ["release_holds"]
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
    add_fields = ["tenant", "reason", "machines", "starts_at", "ends_at"]

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a hold is placed and released, never edited

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # released, never deleted: the record stays

    def has_release_permission(self, request) -> bool:
        if is_platform_staff(request):
            return super().has_view_permission(request) and request.user.has_perm("retention.change_retentionhold")
        return self._tenant_admin_may(request, "add")

    def save_through_service(self, request, form, *, by: Caller, change: bool) -> RetentionHold:
        data = form.cleaned_data
        return services.retention_hold_create(
            by=by,
            reason=data["reason"],
            starts_at=data["starts_at"],
            ends_at=data.get("ends_at"),
            machines=form.machine_external_ids(),
        )

    @admin.action(description="Release selected holds", permissions=["release"])
    def release_holds(self, request, queryset):
        by = caller_of(request)
        released = 0
        for hold in queryset.filter(released_at__isnull=True):
            services.retention_hold_release(by=by.on_tenant(hold.tenant_id), hold=hold)
            released += 1
        self.message_user(request, f"{released} hold(s) released.", messages.SUCCESS)
