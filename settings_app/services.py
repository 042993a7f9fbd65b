"""Writes to tenant settings and unit preferences; each change is audited (never a secret)."""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.services import audit_record
from core import guarded_fetch
from core.caller import Caller
from core.errors import RuleViolation, UpstreamFailed
from settings_app import access, dashboard, probe, selectors, validators
from settings_app.crypto import decrypt_secret, encrypt_secret
from settings_app.models import AiSettings, DashboardPreset, RolePermission, UnitPreference

# What PATCH /settings/ai may change; `custom_ai_api_key` is write-only.
AI_FIELDS = ("ai_provider", "custom_ai_url", "custom_ai_model", "custom_ai_api_key")
MAX_AI_API_KEY_LENGTH = 4096

logger = logging.getLogger(__name__)


@transaction.atomic
def role_permissions_update(*, by: Caller, permissions: dict[str, dict[str, list[str]]]) -> dict[str, RolePermission]:
    """Save the tabs and nav pages of the given roles of `by`'s tenant (the API sends both).

    Lists are stored de-duplicated in catalogue order; what changed is audited.
    Returns each given role's saved row.
    """
    validators.role_permissions_validate(permissions)
    changed: dict[str, dict[str, list[str]]] = {}
    rows = {row.role: row for row in RolePermission.objects.for_tenant(by.tenant_id).select_for_update()}
    for role, lists in permissions.items():
        new = {
            "settings": access.canonical(lists.get("settings", []), access.SETTINGS_TABS),
            "nav": access.canonical(lists.get("nav", []), access.NAV_PAGES),
        }
        row = rows.get(role)
        old = row.as_dict() if row else access.default_access(role)
        if row is None:
            rows[role] = RolePermission.objects.create(
                tenant_id=by.tenant_id, role=role, settings_tabs=new["settings"], nav_pages=new["nav"]
            )
        elif old != new:
            row.settings_tabs, row.nav_pages = new["settings"], new["nav"]
            row.save(update_fields=["settings_tabs", "nav_pages", "updated_at"])
        if old != new:
            changed[role] = new
    if changed:
        audit_record(by=by, action="settings.role_permissions.update", target_type="role_permissions", changes=changed)
    return {role: rows[role] for role in permissions}


@transaction.atomic
def ai_settings_update(*, by: Caller, changes: dict[str, Any], keep_row: bool = False) -> AiSettings:
    """Apply a partial update of `by`'s tenant's AI settings (see `_ai_settings_apply`), save it, audit what changed.

    Nothing is saved when nothing changed, unless `keep_row` (the admin's add page
    needs a row even when it holds only the defaults).
    """
    ai = AiSettings.objects.for_tenant(by.tenant_id).select_for_update().first() or AiSettings(tenant_id=by.tenant_id)
    audited = _ai_settings_apply(ai, changes)
    if audited or (keep_row and ai.pk is None):
        ai.save()
    if audited:
        audit_record(by=by, action="settings.ai.update", target=ai, changes=audited)
    return ai


def ai_settings_check(*, by: Caller, changes: dict[str, Any]) -> None:
    """Raise the ValidationError that `ai_settings_update` would, without saving (for forms)."""
    ai = AiSettings.objects.for_tenant(by.tenant_id).first() or AiSettings(tenant_id=by.tenant_id)
    _ai_settings_apply(ai, changes)


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
        except guarded_fetch.UrlRefused as exc:
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
def dashboard_preset_save(*, by: Caller, role: str, widgets: list[dict], stat_metrics: list[dict]) -> DashboardPreset:
    """Save one role's preset of `by`'s tenant (see validators.dashboard_preset_validate); audited when it changed."""
    validators.dashboard_preset_validate(role=role, widgets=widgets, stat_metrics=stat_metrics)
    new = {"widgets": widgets, "statMetrics": stat_metrics}
    preset = DashboardPreset.objects.for_tenant(by.tenant_id).select_for_update().filter(role=role).first()
    old = preset.as_dict() if preset else dashboard.default_preset(role)
    if preset is None:
        preset = DashboardPreset.objects.create(
            tenant_id=by.tenant_id, role=role, widgets=widgets, stat_metrics=stat_metrics
        )
    elif old != new:
        preset.widgets, preset.stat_metrics = widgets, stat_metrics
        preset.save(update_fields=["widgets", "stat_metrics", "updated_at"])
    if old != new:
        audit_record(
            by=by,
            action="settings.dashboard_preset.update",
            target=preset,
            changes={"role": role, "widgets": widgets, "statMetrics": stat_metrics},
        )
    return preset


@transaction.atomic
def unit_preferences_update(*, by: Caller, user, changes: dict[str, str], keep_row: bool = False) -> UnitPreference:
    """Change some of `user`'s display units (`by`: the user, or an admin); returns the preference row.

    Nothing is saved when nothing changed, unless `keep_row` (the admin's add page
    needs a row even when it holds only the defaults). Audited in the user's tenant.
    """
    validators.unit_preferences_validate(changes)
    pref = UnitPreference.objects.select_for_update().filter(user=user).first() or UnitPreference(user=user)
    changed = {kind: unit for kind, unit in changes.items() if getattr(pref, kind) != unit}
    for kind, unit in changed.items():
        setattr(pref, kind, unit)
    if changed or (keep_row and pref.pk is None):
        pref.save()
    if changed:
        audit_record(by=by.on_tenant(user.tenant_id), action="settings.units.update", target=pref, changes=changed)
    return pref


# The API's and the admin's answers to a probe that did not list models (contract Part 2):
# one text per kind, whatever the reason (which is logged here, never answered).
PROBE_FAILED = "No Ollama or OpenAI-compatible server answered at {origin}."
ADDRESS_REFUSED = "This address is not allowed for an AI server."


def ai_models_probe(*, by: Caller, probe_url: str | None = None) -> probe.ProbeResult:
    """The models an admin of `by.tenant_id` may choose from; each probe is audited.

    With `probe_url`, that server is asked. Without it, the saved custom server
    is asked, or, for provider `platform`, the platform's configured models are
    listed (no probe, no audit). The saved API key is sent only to the saved URL,
    never to another URL an admin types in, so it cannot be sent off to a server
    of one's choosing.

    A probe is an outbound request the admin chose, so each one leaves a
    `settings.ai.probe` event: the origin asked and the outcome, never the
    reason of a failure (that is logged here, server-side only). Raises
    RuleViolation (400: the address rules' one text, or the URL's syntax under
    the field the URL came from) or UpstreamFailed (502: no model list).
    """
    ai = selectors.ai_settings_get(tenant_id=by.tenant_id)
    if probe_url is None:
        if ai.ai_provider == AiSettings.Provider.PLATFORM or not ai.custom_ai_url:
            models = [{"name": name} for name in settings.HALTLESS_PLATFORM_AI_MODELS]
            return probe.ProbeResult(provider_type="platform", models=models)
        url, field = ai.custom_ai_url, "custom_ai_url"
    else:
        url, field = probe_url, "probe_url"
    changes: dict[str, Any] = {"outcome": "failed", "origin": _origin_of(url)}
    try:
        api_key = None
        if ai.custom_ai_api_key_set and ai.custom_ai_url and url.strip() == ai.custom_ai_url:
            api_key = decrypt_secret(ai.custom_ai_api_key_encrypted)
        result = probe.probe_models(url, api_key=api_key)
    except guarded_fetch.UrlRefused as exc:
        changes["outcome"] = "refused"
        logger.warning("AI probe refused for tenant %s: %s", by.tenant_id, exc)
        if isinstance(exc, guarded_fetch.AddressRefused):
            raise RuleViolation(ADDRESS_REFUSED) from None
        raise RuleViolation({field: [str(exc)]}) from None
    except probe.ProbeFailed as exc:
        logger.warning("AI probe of %s failed for tenant %s: %s", exc.origin, by.tenant_id, exc)
        raise UpstreamFailed(PROBE_FAILED.format(origin=exc.origin)) from None
    else:
        changes.update(outcome="succeeded", provider_type=result.provider_type, models=len(result.models))
        return result
    finally:
        audit_record(by=by, action="settings.ai.probe", target_type="ai_settings", changes=changes)


def _origin_of(url: str) -> str | None:
    try:
        return probe.parse_url(url).origin
    except guarded_fetch.UrlRefused:
        return None
