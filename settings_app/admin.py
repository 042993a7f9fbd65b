"""Admin pages for each setting. Saving goes through the services, so it is validated and audited."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from core.admin import TenantScopedAdmin, form_errors_as_messages
from core.http import client_ip
from settings_app import access, services
from settings_app.api.serializers import DashboardPresetInputSerializer
from settings_app.models import AiSettings, DashboardPreset, RolePermission, UnitPreference


class _ServiceSavedAdmin(TenantScopedAdmin):
    """The form validates through the service's rules; save_model calls the service.

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
class RolePermissionAdmin(_ServiceSavedAdmin):
    form = RolePermissionForm
    list_display = ["tenant", "role", "settings_tabs", "nav_pages", "updated_at"]
    list_filter = ["role", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__name"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "role"] if obj else []

    def save_model(self, request, obj, form, change):
        services.role_permissions_update(
            tenant=self.form_tenant(request, form),
            permissions={obj.role: {"settings": obj.settings_tabs, "nav": obj.nav_pages}},
            actor=request.user,
            client_ip=client_ip(request),
        )
        saved = RolePermission.objects.get(tenant=self.form_tenant(request, form), role=obj.role)
        obj.pk, obj._state.adding = saved.pk, False


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
                services.ai_settings_check(tenant=tenant, changes=self.changes())
            except ValidationError as exc:
                for name, messages in exc.message_dict.items():
                    name = "new_custom_ai_api_key" if name == "custom_ai_api_key" else name
                    self.add_error(name if name in self.fields else None, messages)
        return cleaned


@admin.register(AiSettings)
class AiSettingsAdmin(_ServiceSavedAdmin):
    form = AiSettingsForm
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

    def save_model(self, request, obj, form, change):
        saved = services.ai_settings_update(
            tenant=self.form_tenant(request, form),
            changes=form.changes(),
            actor=request.user,
            client_ip=client_ip(request),
        )
        if saved.pk is None:  # nothing differed from the defaults: keep a row so the admin has one
            saved.save()
        obj.pk, obj._state.adding = saved.pk, False


class DashboardPresetForm(forms.ModelForm):
    class Meta:
        model = DashboardPreset
        fields = ["tenant", "role", "widgets", "stat_metrics"]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        serializer = DashboardPresetInputSerializer(
            data={
                "role": cleaned.get("role") or getattr(self.instance, "role", ""),
                "widgets": cleaned.get("widgets"),
                "statMetrics": cleaned.get("stat_metrics"),
            }
        )
        if not serializer.is_valid():
            # Sentences ("widgets, item 2, size: ..."), never the serializer's ErrorDetail reprs.
            raise ValidationError(form_errors_as_messages(serializer.errors))
        cleaned["widgets"] = [dict(w) for w in serializer.validated_data["widgets"]]
        cleaned["stat_metrics"] = [dict(m) for m in serializer.validated_data["statMetrics"]]
        return cleaned


@admin.register(DashboardPreset)
class DashboardPresetAdmin(_ServiceSavedAdmin):
    form = DashboardPresetForm
    list_display = ["tenant", "role", "updated_at"]
    list_filter = ["role", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__name"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "role"] if obj else []

    def save_model(self, request, obj, form, change):
        saved = services.dashboard_preset_save(
            tenant=self.form_tenant(request, form),
            role=obj.role,
            widgets=form.cleaned_data["widgets"],
            stat_metrics=form.cleaned_data["stat_metrics"],
            actor=request.user,
            client_ip=client_ip(request),
        )
        obj.pk, obj._state.adding = saved.pk, False


@admin.register(UnitPreference)
class UnitPreferenceAdmin(_ServiceSavedAdmin):
    tenant_path = "user__tenant"
    list_display = ["user", "temperature", "pressure", "vibration", "updated_at"]
    list_filter = ["user__tenant", "temperature", "pressure", "vibration"]
    list_select_related = ["user"]
    search_fields = ["user__email"]
    raw_id_fields = ["user"]

    def get_readonly_fields(self, request, obj=None):
        return ["user"] if obj else []

    def save_model(self, request, obj, form, change):
        services.unit_preferences_update(
            user=obj.user,
            changes={kind: getattr(obj, kind) for kind in ("temperature", "pressure", "vibration")},
            actor=request.user,
            client_ip=client_ip(request),
        )
        saved = UnitPreference.objects.filter(user=obj.user).first() or UnitPreference.objects.create(user=obj.user)
        obj.pk, obj._state.adding = saved.pk, False
