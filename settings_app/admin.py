"""Admin pages for each setting. Saving goes through the services, so it is validated and audited."""

from types import SimpleNamespace

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from core.admin import ServiceBackedAdmin, is_platform_staff
from core.caller import Caller, caller_of
from core.errors import DomainError
from settings_app import access, dashboard, services, validators
from settings_app.models import AiSettings, DashboardPreset, RolePermission, UnitPreference
from settings_app.throttling import AiProbeTenantThrottle


class _SettingsAdmin(ServiceBackedAdmin):
    """A setting's page: the form validates with the service's rules, the service saves.

    Settings are changed, never deleted here (the service has no "delete").
    """

    tenant_admin_permissions = frozenset({"view", "add", "change"})

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class RolePermissionForm(forms.ModelForm):
    settings_tabs = forms.MultipleChoiceField(
        choices=[(t, t) for t in access.SETTINGS_TABS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Settings tabs",
    )
    nav_pages = forms.MultipleChoiceField(
        choices=[(p, p) for p in access.NAV_PAGES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Navigation pages",
    )

    class Meta:
        model = RolePermission
        fields = ["tenant", "role", "settings_tabs", "nav_pages"]


@admin.register(RolePermission)
class RolePermissionAdmin(_SettingsAdmin):
    form = RolePermissionForm
    list_display = ["tenant", "role", "settings_tabs", "nav_pages", "updated_at"]
    list_filter = ["role", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__name"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "role"] if obj else []

    def save_through_service(self, request, form, *, by: Caller, change: bool) -> RolePermission:
        row = form.instance  # the form's values, not saved
        saved = services.role_permissions_update(
            by=by, permissions={row.role: {"settings": row.settings_tabs, "nav": row.nav_pages}}
        )
        return saved[row.role]


class AiSettingsForm(forms.ModelForm):
    new_custom_ai_api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        label="New API key",
        help_text="Leave empty to keep the stored key. The key is never shown.",
    )
    clear_custom_ai_api_key = forms.BooleanField(required=False, label="Clear the stored API key")

    class Meta:
        model = AiSettings
        fields = ["tenant", "ai_provider", "custom_ai_url", "custom_ai_model"]
        labels = {"ai_provider": "AI provider", "custom_ai_url": "Custom AI URL", "custom_ai_model": "Custom AI model"}

    def changes(self) -> dict:
        data = self.cleaned_data
        changes = {name: data[name] for name in ("ai_provider", "custom_ai_url", "custom_ai_model")}
        if data.get("new_custom_ai_api_key"):
            changes["custom_ai_api_key"] = data["new_custom_ai_api_key"]
        elif data.get("clear_custom_ai_api_key"):
            changes["custom_ai_api_key"] = None
        return changes

    def clean(self):
        cleaned = super().clean()
        tenant = cleaned.get("tenant") or getattr(self.instance, "tenant", None)
        if tenant is not None and not self.errors:
            try:
                services.ai_settings_check(by=Caller.system(tenant_id=tenant.pk), changes=self.changes())
            except ValidationError as exc:
                for name, messages in exc.message_dict.items():
                    name = "new_custom_ai_api_key" if name == "custom_ai_api_key" else name
                    self.add_error(name if name in self.fields else None, messages)
        return cleaned


@admin.register(AiSettings)
class AiSettingsAdmin(_SettingsAdmin):
    form = AiSettingsForm
    change_form_template = "admin/settings_app/aisettings/change_form.html"

    def get_urls(self):
        probe_view = self.admin_site.admin_view(require_POST(self.probe_view))
        return [
            path("<path:object_id>/probe/", probe_view, name="settings_app_aisettings_probe"),
            *super().get_urls(),
        ]

    def probe_view(self, request, object_id):
        """Ask the saved server for its models, as GET /settings/ai/models does, on the same throttle."""
        ai = self.get_object(request, object_id)
        if ai is None or not self.has_change_permission(request, ai):
            raise Http404
        change_url = reverse("admin:settings_app_aisettings_change", args=[ai.pk])
        # The API's budget of the row's tenant (staff probing a tenant's server spend that tenant's).
        budget_holder = SimpleNamespace(user=SimpleNamespace(tenant_id=ai.tenant_id))
        if not AiProbeTenantThrottle().allow_request(budget_holder, None):
            self.message_user(request, "Too many probes; try again in a minute.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        try:
            result = services.ai_models_probe(by=caller_of(request).on_tenant(ai.tenant_id))
        except DomainError as exc:
            # The button is not a form: each message, without the name of the field the URL is saved in.
            found = exc.message if isinstance(exc.message, dict) else {None: [exc.message]}
            for texts in found.values():
                for text in texts:
                    self.message_user(request, text, messages.ERROR)
        else:
            names = ", ".join(str(model.get("name", model)) for model in result.models) or "none"
            self.message_user(request, f"{result.provider_type} server; models: {names}", messages.SUCCESS)
        return HttpResponseRedirect(change_url)

    list_display = ["tenant", "ai_provider_label", "ai_url", "ai_model", "api_key_set", "updated_at"]
    list_filter = ["ai_provider"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__name", "custom_ai_url"]

    @admin.display(description="AI provider", ordering="ai_provider")
    def ai_provider_label(self, obj: AiSettings) -> str:
        return obj.get_ai_provider_display()

    @admin.display(description="custom AI URL", ordering="custom_ai_url")
    def ai_url(self, obj: AiSettings) -> str:
        return obj.custom_ai_url

    @admin.display(description="custom AI model", ordering="custom_ai_model")
    def ai_model(self, obj: AiSettings) -> str:
        return obj.custom_ai_model

    @admin.display(boolean=True, description="API key set")
    def api_key_set(self, obj: AiSettings) -> bool:
        return obj.custom_ai_api_key_set

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "api_key_set"] if obj else ["api_key_set"]

    def save_through_service(self, request, form, *, by: Caller, change: bool) -> AiSettings:
        # A row even when nothing differs from the defaults: the admin goes on to its page.
        return services.ai_settings_update(by=by, changes=form.changes(), keep_row=True)


def _widget_row(i: int) -> tuple[str, ...]:
    return (f"widget_{i}_order", f"widget_{i}_id", f"widget_{i}_label_key", f"widget_{i}_size", f"widget_{i}_visible")


class DashboardPresetForm(forms.ModelForm):
    """A preset as rows: one per widget (order, id, label key, size, visible) and one per stat metric.

    Rows with an empty id are ignored; widgets are saved in the order of their `order`
    (then of their row). The service's rules (settings_app.validators) check the result.
    """

    class Meta:
        model = DashboardPreset
        fields = ["tenant", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        widgets = list(instance.widgets or []) if instance.pk else []
        metrics = list(instance.stat_metrics or []) if instance.pk else []
        for i, widget in enumerate(widgets[: dashboard.MAX_WIDGETS]):
            self.initial.update(
                {
                    f"widget_{i}_order": i + 1,
                    f"widget_{i}_id": widget.get("id", ""),
                    f"widget_{i}_label_key": widget.get("labelKey", ""),
                    f"widget_{i}_size": widget.get("size", "full"),
                    f"widget_{i}_visible": bool(widget.get("visible")),
                }
            )
        for i, metric in enumerate(metrics[: dashboard.MAX_STAT_METRICS]):
            self.initial[f"metric_{i}"] = metric.get("metricId", "")

    def _rows(self) -> tuple[list[dict], list[dict]]:
        data = self.cleaned_data
        widgets = []
        for i in range(dashboard.MAX_WIDGETS):
            widget_id = (data.get(f"widget_{i}_id") or "").strip()
            if not widget_id:
                continue
            order = data.get(f"widget_{i}_order")
            widget = {
                "id": widget_id,
                "labelKey": (data.get(f"widget_{i}_label_key") or "").strip(),
                "visible": bool(data.get(f"widget_{i}_visible")),
                "size": data.get(f"widget_{i}_size") or "full",
            }
            widgets.append((order if order is not None else 10_000, i, widget))
        metrics = [
            {"metricId": value.strip()}
            for i in range(dashboard.MAX_STAT_METRICS)
            if (value := data.get(f"metric_{i}") or "").strip()
        ]
        return [widget for _, _, widget in sorted(widgets, key=lambda item: item[:2])], metrics

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        widgets, metrics = self._rows()
        role = cleaned.get("role") or getattr(self.instance, "role", "")
        # Sentences ("widgets, item 2, size: ..."), as the service would refuse them.
        validators.dashboard_preset_validate(role=role, widgets=widgets, stat_metrics=metrics)
        cleaned["widgets"], cleaned["stat_metrics"] = widgets, metrics
        return cleaned


_row_fields: dict[str, forms.Field] = {}
for _i in range(dashboard.MAX_WIDGETS):
    _row_fields.update(
        {
            f"widget_{_i}_order": forms.IntegerField(
                label=f"Widget {_i + 1}: order", required=False, min_value=1, widget=forms.NumberInput({"size": 3})
            ),
            f"widget_{_i}_id": forms.CharField(label="id", required=False, max_length=dashboard.MAX_IDENTIFIER_LENGTH),
            f"widget_{_i}_label_key": forms.CharField(
                label="label key", required=False, max_length=dashboard.MAX_LABEL_KEY_LENGTH
            ),
            f"widget_{_i}_size": forms.ChoiceField(
                label="size", choices=[(size, size) for size in dashboard.WIDGET_SIZES], initial="full", required=False
            ),
            f"widget_{_i}_visible": forms.BooleanField(label="visible", required=False, initial=True),
        }
    )
for _i in range(dashboard.MAX_STAT_METRICS):
    _row_fields[f"metric_{_i}"] = forms.CharField(
        label=f"Stat metric {_i + 1}", required=False, max_length=dashboard.MAX_IDENTIFIER_LENGTH
    )
# Declared on the class, so the admin's form factory accepts them in its fieldsets.
DashboardPresetForm.base_fields.update(_row_fields)
DashboardPresetForm.declared_fields = {**DashboardPresetForm.declared_fields, **_row_fields}


@admin.register(DashboardPreset)
class DashboardPresetAdmin(_SettingsAdmin):
    form = DashboardPresetForm
    list_display = ["tenant", "role", "updated_at"]
    list_filter = ["role", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__name"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "role"] if obj else []

    def get_fieldsets(self, request, obj=None):
        # The rows in use plus three empty ones for new widgets (two for metrics).
        used_widgets = len(obj.widgets or []) if obj else 0
        used_metrics = len(obj.stat_metrics or []) if obj else 0
        widget_rows = min(dashboard.MAX_WIDGETS, used_widgets + 3 if obj else 8)
        metric_rows = min(dashboard.MAX_STAT_METRICS, used_metrics + 2 if obj else 5)
        fieldsets = [
            (None, {"fields": ["tenant", "role"]}),
            ("Widgets", {"fields": [_widget_row(i) for i in range(widget_rows)]}),
            ("Stat metrics", {"fields": [f"metric_{i}" for i in range(metric_rows)]}),
        ]
        if is_platform_staff(request):
            return fieldsets
        return [(name, {**opts, "fields": [f for f in opts["fields"] if f != "tenant"]}) for name, opts in fieldsets]

    def save_through_service(self, request, form, *, by: Caller, change: bool) -> DashboardPreset:
        return services.dashboard_preset_save(
            by=by,
            role=form.instance.role,
            widgets=form.cleaned_data["widgets"],
            stat_metrics=form.cleaned_data["stat_metrics"],
        )


@admin.register(UnitPreference)
class UnitPreferenceAdmin(_SettingsAdmin):
    tenant_path = "user__tenant"
    list_display = ["user", "temperature", "pressure", "vibration", "updated_at"]
    list_filter = ["user__tenant", "temperature", "pressure", "vibration"]
    list_select_related = ["user"]
    search_fields = ["user__email"]
    raw_id_fields = ["user"]

    def get_readonly_fields(self, request, obj=None):
        return ["user"] if obj else []

    def save_through_service(self, request, form, *, by: Caller, change: bool) -> UnitPreference:
        pref = form.instance  # the form's values, not saved
        changes = {kind: getattr(pref, kind) for kind in ("temperature", "pressure", "vibration")}
        # A row even when it holds only the defaults: the admin goes on to its page.
        return services.unit_preferences_update(by=by, user=pref.user, changes=changes, keep_row=True)
