import uuid

from django.conf import settings
from django.db import models

from core.tenancy import TenantQuerySet, tenant_queryset
from settings_app.units import DEFAULT_UNITS, UNIT_CHOICES
from users.models import Role


class UnitPreference(models.Model):
    """A user's display units. No row means the defaults (celsius, bar, mm_s)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="unit_preference")
    temperature = models.CharField(
        max_length=16, choices=[(c, c) for c in UNIT_CHOICES["temperature"]], default=DEFAULT_UNITS["temperature"]
    )
    pressure = models.CharField(
        max_length=16, choices=[(c, c) for c in UNIT_CHOICES["pressure"]], default=DEFAULT_UNITS["pressure"]
    )
    vibration = models.CharField(
        max_length=16, choices=[(c, c) for c in UNIT_CHOICES["vibration"]], default=DEFAULT_UNITS["vibration"]
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = tenant_queryset("user__tenant").as_manager()

    def __str__(self) -> str:
        return f"units of {self.user}"

    def as_dict(self) -> dict[str, str]:
        return {kind: getattr(self, kind) for kind in UNIT_CHOICES}


class RolePermission(models.Model):
    """Which settings tabs and nav pages a role is shown, in one tenant.

    No row for a role means the defaults (settings_app.access). Admins have no
    row: they always see everything.
    """

    class ConfigurableRole(models.TextChoices):
        OPERATOR = Role.OPERATOR.value
        VIEWER = Role.VIEWER.value

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="role_permissions")
    role = models.CharField(max_length=16, choices=ConfigurableRole.choices)
    settings_tabs = models.JSONField(default=list, blank=True)
    nav_pages = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "role"]
        constraints = [models.UniqueConstraint(fields=["tenant", "role"], name="settings_role_permission_unique")]

    def __str__(self) -> str:
        return f"{self.role} access in {self.tenant}"

    def as_dict(self) -> dict[str, list[str]]:
        return {"settings": list(self.settings_tabs), "nav": list(self.nav_pages)}


class AiSettings(models.Model):
    """A tenant's AI provider. No row means provider `platform`."""

    class Provider(models.TextChoices):
        PLATFORM = "platform", "Haltless-hosted"
        CUSTOM = "custom", "Self-hosted (Ollama or OpenAI-compatible)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="ai_settings")
    ai_provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.PLATFORM)
    custom_ai_url = models.CharField(max_length=2048, blank=True)
    custom_ai_model = models.CharField(max_length=200, blank=True)
    # Encrypted (settings_app.crypto); never shown, returned or logged.
    custom_ai_api_key_encrypted = models.TextField(blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = "AI settings"
        verbose_name_plural = "AI settings"

    def __str__(self) -> str:
        return f"AI settings of {self.tenant}"

    @property
    def custom_ai_api_key_set(self) -> bool:
        return bool(self.custom_ai_api_key_encrypted)


class DashboardPreset(models.Model):
    """A role's default dashboard layout in one tenant. No row means the defaults."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="dashboard_presets")
    role = models.CharField(max_length=16, choices=Role.choices)
    widgets = models.JSONField(default=list, blank=True)
    stat_metrics = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "role"]
        constraints = [models.UniqueConstraint(fields=["tenant", "role"], name="settings_dashboard_preset_unique")]

    def __str__(self) -> str:
        return f"{self.role} dashboard of {self.tenant}"

    def as_dict(self) -> dict[str, list[dict]]:
        return {"widgets": list(self.widgets), "statMetrics": list(self.stat_metrics)}
