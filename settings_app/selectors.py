from uuid import UUID

from settings_app import access, dashboard
from settings_app.models import AiSettings, DashboardPreset, RolePermission, UnitPreference
from settings_app.units import DEFAULT_UNITS
from tenants import tiers


def unit_preferences_get(*, user) -> dict[str, str]:
    """The user's display units; defaults when none are saved (one query)."""
    pref = UnitPreference.objects.filter(user=user).first()
    return pref.as_dict() if pref else dict(DEFAULT_UNITS)


def role_permissions_get(*, tenant_id: UUID | None) -> dict[str, dict[str, list[str]]]:
    """Every configurable role's tabs and nav pages; defaults for roles never saved (one query)."""
    saved = {row.role: row.as_dict() for row in RolePermission.objects.for_tenant(tenant_id)}
    return {role: saved.get(role) or access.default_access(role) for role in access.CONFIGURABLE_ROLES}


def effective_access_get(*, user) -> dict[str, list[str]]:
    """What the user is shown: everything for admins (no query), else their role's lists."""
    if user.is_tenant_admin:
        return access.full_access()
    if user.role not in access.CONFIGURABLE_ROLES:
        return {"settings": [], "nav": []}
    row = RolePermission.objects.for_tenant(user.tenant_id).filter(role=user.role).first()
    return row.as_dict() if row else access.default_access(user.role)


def me_get(*, user) -> dict:
    """What a front end needs at start-up, in one call (three queries besides authentication)."""
    tenant = user.tenant
    return {
        "user": {"id": user.id, "email": user.email, "full_name": user.full_name, "role": user.role},
        "tenant": {
            "id": tenant.id,
            "name": tenant.name,
            "tier": tenant.tier,
            "retention_days": tiers.retention_days(tenant.tier) if tenant.tier in tiers.tier_names() else None,
        },
        "permissions": effective_access_get(user=user),
        "units": unit_preferences_get(user=user),
    }


def ai_settings_get(*, tenant_id: UUID) -> AiSettings:
    """The tenant's AI settings; an unsaved default (provider `platform`) when none exist."""
    return AiSettings.objects.for_tenant(tenant_id).first() or AiSettings(tenant_id=tenant_id)


def dashboard_preset_list(*, tenant_id: UUID | None) -> dict[str, dict[str, list[dict]]]:
    """Every role's dashboard preset; defaults for roles never saved (one query)."""
    saved = {row.role: row.as_dict() for row in DashboardPreset.objects.for_tenant(tenant_id)}
    return {role: saved.get(role) or dashboard.default_preset(role) for role in dashboard.PRESET_ROLES}
