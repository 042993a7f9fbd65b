"""Writes to tenant settings and unit preferences; each change is audited (never a secret)."""

import logging
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction

from audit.services import audit_record
from settings_app import access, dashboard, probe, selectors
from settings_app.crypto import encrypt_secret
from settings_app.models import AiSettings, DashboardPreset, RolePermission, UnitPreference
from settings_app.units import UNIT_CHOICES
from tenants.models import Tenant

# What PATCH /settings/ai may change; `custom_ai_api_key` is write-only.
AI_FIELDS = ("ai_provider", "custom_ai_url", "custom_ai_model", "custom_ai_api_key")
MAX_AI_API_KEY_LENGTH = 4096

logger = logging.getLogger(__name__)


@transaction.atomic
def role_permissions_update(
    *,
    tenant: Tenant,
    permissions: dict[str, dict[str, list[str]]],
    actor=None,
    client_ip: str | None = None,
) -> dict[str, dict[str, list[str]]]:
    """Save the tabs and nav pages of the given roles (the API sends both).

    Lists are stored de-duplicated in catalogue order. Returns what changed.
    """
    errors: dict[str, Any] = {}
    for role, lists in permissions.items():
        if role not in access.CONFIGURABLE_ROLES:
            errors[role] = [access.ADMIN_NOT_CONFIGURABLE if role == "admin" else f"Unknown role {role!r}."]
            continue
        role_errors = {}
        for key, known in (("settings", access.SETTINGS_TABS), ("nav", access.NAV_PAGES)):
            unknown = access.unknown_names(lists.get(key, []), known)
            if unknown:
                role_errors[key] = [f"Unknown {key} entries: {', '.join(unknown)}."]
        if role_errors:
            errors[role] = role_errors
    if errors:
        raise ValidationError(errors)

    changed: dict[str, dict[str, list[str]]] = {}
    current = {row.role: row for row in RolePermission.objects.select_for_update().filter(tenant=tenant)}
    for role, lists in permissions.items():
        new = {
            "settings": access.canonical(lists.get("settings", []), access.SETTINGS_TABS),
            "nav": access.canonical(lists.get("nav", []), access.NAV_PAGES),
        }
        row = current.get(role)
        old = row.as_dict() if row else access.default_access(role)
        if row is None:
            RolePermission.objects.create(tenant=tenant, role=role, settings_tabs=new["settings"], nav_pages=new["nav"])
        elif old != new:
            row.settings_tabs, row.nav_pages = new["settings"], new["nav"]
            row.save(update_fields=["settings_tabs", "nav_pages", "updated_at"])
        if old != new:
            changed[role] = new
    if changed:
        audit_record(
            tenant_id=tenant.id,
            action="settings.role_permissions.update",
            actor=actor,
            target_type="role_permissions",
            changes=changed,
            client_ip=client_ip,
        )
    return changed


@transaction.atomic
def ai_settings_update(
    *,
    tenant: Tenant,
    changes: dict[str, Any],
    actor=None,
    client_ip: str | None = None,
) -> AiSettings:
    """Apply a partial update (see `_ai_settings_apply`), save it and audit what changed."""
    ai = AiSettings.objects.select_for_update().filter(tenant=tenant).first() or AiSettings(tenant=tenant)
    audited = _ai_settings_apply(ai, changes)
    if audited:
        ai.save()
        audit_record(
            tenant_id=tenant.id,
            action="settings.ai.update",
            actor=actor,
            target=ai,
            changes=audited,
            client_ip=client_ip,
        )
    return ai


def ai_settings_check(*, tenant: Tenant, changes: dict[str, Any]) -> None:
    """Raise the ValidationError that `ai_settings_update` would, without saving (for forms)."""
    _ai_settings_apply(AiSettings.objects.filter(tenant=tenant).first() or AiSettings(tenant=tenant), changes)


def _ai_settings_apply(ai: AiSettings, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply `changes` to `ai` in memory, validate the resulting state, return what to audit.

    `custom_ai_api_key`: a string sets it, None or "" clears it, absent keeps
    it. A key is bound to the exact saved URL: when any part of it changes (a
    path on the same origin may be another service that echoes headers) and no
    new key comes with it, the old key is cleared rather than sent there. URLs
    are checked like the probe checks them, except that host names are not
    resolved (see probe.validate_saved_url).
    """
    unknown = sorted(set(changes) - set(AI_FIELDS))
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    before = {"ai_provider": ai.ai_provider, "custom_ai_url": ai.custom_ai_url, "custom_ai_model": ai.custom_ai_model}
    had_key = ai.custom_ai_api_key_set

    errors: dict[str, list[str]] = {}
    if "ai_provider" in changes:
        if changes["ai_provider"] not in AiSettings.Provider.values:
            errors["ai_provider"] = [f"Choose one of: {', '.join(AiSettings.Provider.values)}."]
        else:
            ai.ai_provider = changes["ai_provider"]
    if "custom_ai_url" in changes:
        ai.custom_ai_url = (changes["custom_ai_url"] or "").strip()
    if "custom_ai_model" in changes:
        ai.custom_ai_model = (changes["custom_ai_model"] or "").strip()
        if not ai.custom_ai_model.isprintable():
            errors["custom_ai_model"] = ["The model name must not contain control characters."]
    new_key = changes.get("custom_ai_api_key", ...)
    if isinstance(new_key, str):
        new_key = new_key.strip()
        if len(new_key) > MAX_AI_API_KEY_LENGTH:
            errors["custom_ai_api_key"] = [f"The API key is longer than {MAX_AI_API_KEY_LENGTH} characters."]

    # A saved URL that the rules now refuse (say, loopback no longer allowed) must not
    # block switching to `platform`: it is checked when it changes or is in use.
    url_in_use = ai.ai_provider == AiSettings.Provider.CUSTOM or ai.custom_ai_url != before["custom_ai_url"]
    if ai.custom_ai_url and url_in_use:
        try:
            ai.custom_ai_url = probe.validate_saved_url(ai.custom_ai_url)
        except probe.ProbeRefused as exc:
            errors["custom_ai_url"] = [str(exc)]
    if ai.ai_provider == AiSettings.Provider.CUSTOM:
        if not ai.custom_ai_url:
            errors["custom_ai_url"] = ["Provider custom needs the URL of an Ollama or OpenAI-compatible server."]
        if not ai.custom_ai_model and "custom_ai_model" not in errors:
            errors["custom_ai_model"] = ["Provider custom needs a model."]
    if errors:
        raise ValidationError(errors)

    key_change = ""
    if new_key is not ...:
        ai.custom_ai_api_key_encrypted = encrypt_secret(new_key) if new_key else ""
        key_change = "set" if new_key else ("cleared" if had_key else "")
    elif had_key and ai.custom_ai_url != before["custom_ai_url"]:
        ai.custom_ai_api_key_encrypted = ""
        key_change = "cleared"

    after = {"ai_provider": ai.ai_provider, "custom_ai_url": ai.custom_ai_url, "custom_ai_model": ai.custom_ai_model}
    audited = {name: value for name, value in after.items() if value != before[name]}
    if key_change:
        # Whether the key was set or cleared, never the key.
        audited["custom_ai_credential"] = key_change
    return audited


@transaction.atomic
def dashboard_preset_save(
    *,
    tenant: Tenant,
    role: str,
    widgets: list[dict],
    stat_metrics: list[dict],
    actor=None,
    client_ip: str | None = None,
) -> DashboardPreset:
    """Save one role's preset (already validated by the API's or admin's serializer)."""
    if role not in dashboard.PRESET_ROLES:
        raise ValidationError({"role": [f"Unknown role {role!r}; choose one of: {', '.join(dashboard.PRESET_ROLES)}."]})
    new = {"widgets": widgets, "statMetrics": stat_metrics}
    preset = DashboardPreset.objects.select_for_update().filter(tenant=tenant, role=role).first()
    old = preset.as_dict() if preset else dashboard.default_preset(role)
    if preset is None:
        preset = DashboardPreset.objects.create(tenant=tenant, role=role, widgets=widgets, stat_metrics=stat_metrics)
    elif old != new:
        preset.widgets, preset.stat_metrics = widgets, stat_metrics
        preset.save(update_fields=["widgets", "stat_metrics", "updated_at"])
    if old != new:
        audit_record(
            tenant_id=tenant.id,
            action="settings.dashboard_preset.update",
            actor=actor,
            target=preset,
            changes={"role": role, "widgets": widgets, "statMetrics": stat_metrics},
            client_ip=client_ip,
        )
    return preset


@transaction.atomic
def unit_preferences_update(
    *,
    user,
    changes: dict[str, str],
    actor=None,
    client_ip: str | None = None,
) -> dict[str, str]:
    """Change some of the user's display units; returns all of them."""
    errors = {}
    for kind, unit in changes.items():
        if kind not in UNIT_CHOICES:
            errors[kind] = ["Unknown field."]
        elif unit not in UNIT_CHOICES[kind]:
            errors[kind] = [f"Unknown {kind} unit {unit!r}; choose one of: {', '.join(UNIT_CHOICES[kind])}."]
    if errors:
        raise ValidationError(errors)
    pref = UnitPreference.objects.select_for_update().filter(user=user).first() or UnitPreference(user=user)
    changed = {kind: unit for kind, unit in changes.items() if getattr(pref, kind) != unit}
    if changed:
        for kind, unit in changed.items():
            setattr(pref, kind, unit)
        pref.save()
        audit_record(
            tenant_id=user.tenant_id,
            action="settings.units.update",
            actor=actor if actor is not None else user,
            target=pref,
            changes=changed,
            client_ip=client_ip,
        )
    return pref.as_dict()


def ai_models_probe(
    *, tenant_id: UUID, probe_url: str | None, actor=None, client_ip: str | None = None
) -> probe.ProbeResult:
    """The models an admin may choose from (see selectors.ai_models_for_tenant), each probe audited.

    A probe is an outbound request the admin chose, so each one leaves a
    `settings.ai.probe` event: the origin asked and the outcome, never the
    reason of a failure (that is logged here, server-side only).
    """
    outcome, origin, result = "failed", None, None
    try:
        result = selectors.ai_models_for_tenant(tenant_id=tenant_id, probe_url=probe_url)
        outcome = "succeeded"
        return result
    except probe.ProbeRefused as exc:
        outcome = "refused"
        logger.warning("AI probe refused for tenant %s: %s", tenant_id, exc)
        raise
    except probe.ProbeFailed as exc:
        origin = exc.origin
        logger.warning("AI probe of %s failed for tenant %s: %s", exc.origin, tenant_id, exc)
        raise
    finally:
        if result is None or result.provider_type != "platform":  # listing the platform's models probes nothing
            changes = {"outcome": outcome, "origin": origin or _origin_of(probe_url, tenant_id=tenant_id)}
            if result is not None:
                changes.update(provider_type=result.provider_type, models=len(result.models))
            audit_record(
                tenant_id=tenant_id,
                action="settings.ai.probe",
                actor=actor,
                target_type="ai_settings",
                changes=changes,
                client_ip=client_ip,
            )


def _origin_of(probe_url: str | None, *, tenant_id: UUID) -> str | None:
    url = probe_url if probe_url is not None else selectors.ai_settings_for_tenant(tenant_id=tenant_id).custom_ai_url
    try:
        return probe.parse_url(url).origin
    except probe.ProbeRefused:
        return None
