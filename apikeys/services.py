from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apikeys import keys, machine_scope, network, ratelimit, sampling, scopes
from apikeys.models import ApiKey
from audit.services import audit_record
from tenants.models import Tenant

NAME_MAX_LENGTH = ApiKey._meta.get_field("name").max_length
# `last_used_at` is bookkeeping: written at most this often per key, never on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedApiKey:
    """A newly created key and its plaintext: the only moment the plaintext exists."""

    api_key: ApiKey
    secret: str


class ApiKeyAlreadyRevoked(Exception):
    pass


_UNSET: Any = object()


def _actor_user(actor):
    """The user to store as `created_by`: an API-key principal is not one."""
    return None if actor is None or getattr(actor, "is_api_key", False) else actor


def _clean_name(name: str, errors: dict[str, list[str]]) -> str:
    name = (name or "").strip()
    if not name:
        errors["name"] = ["A key needs a name."]
    elif len(name) > NAME_MAX_LENGTH:
        errors["name"] = [f"Ensure this field has no more than {NAME_MAX_LENGTH} characters."]
    return name


def _clean_scopes(requested, errors: dict[str, list[str]]) -> list[str]:
    try:
        granted = scopes.expand_scopes(scopes.DEFAULT_SCOPES if requested is None else requested)
    except scopes.UnknownScope as exc:
        errors["scopes"] = [str(exc)]
        return []
    if not granted:
        errors["scopes"] = ["Grant at least one scope."]
    return granted


def _clean_expires_at(expires_at: datetime | None, errors: dict[str, list[str]]) -> None:
    if expires_at is None:
        return
    if timezone.is_naive(expires_at):
        errors["expires_at"] = ["Give the expiry with a time zone."]
    elif expires_at <= timezone.now():
        errors["expires_at"] = ["The expiry must be in the future."]


def _clean_restrictions(
    *,
    tenant: Tenant,
    machines: list[str] | None = _UNSET,
    allowed_cidrs: list[str] = _UNSET,
    rate_limit: dict | None = _UNSET,
    errors: dict[str, list[str]],
) -> dict[str, Any]:
    """The model fields for `machines`, `allowed_cidrs` and `rate_limit` (those given), errors by field."""
    values: dict[str, Any] = {}
    if machines is not _UNSET:
        try:
            values["machine_ids"] = machine_scope.resolve_machines(tenant_id=tenant.id, value=machines)
        except ValueError as exc:
            errors["machines"] = exc.args[0]
    if allowed_cidrs is not _UNSET:
        try:
            values["allowed_cidrs"] = network.parse_allowed_cidrs([] if allowed_cidrs is None else allowed_cidrs)
        except ValueError as exc:
            errors["allowed_cidrs"] = exc.args[0]
    if rate_limit is not _UNSET:
        try:
            limits = ratelimit.validate_rate_limit({} if rate_limit is None else rate_limit, tier=tenant.tier)
        except ValueError as exc:
            errors["rate_limit"] = exc.args[0]
        else:
            values.update(limits)
    return values


def api_key_validate(
    *, name: str, scopes_requested: str | list[str] | None, expires_at: datetime | None
) -> tuple[str, list[str]]:
    """The create rules, for every entry point (API, admin, command).

    Returns the stripped name and the expanded scopes; raises ValidationError
    keyed by field.
    """
    errors: dict[str, list[str]] = {}
    name = _clean_name(name, errors)
    granted = _clean_scopes(scopes_requested, errors)
    _clean_expires_at(expires_at, errors)
    if errors:
        raise ValidationError(errors)
    return name, granted


@transaction.atomic
def api_key_create(
    *,
    tenant: Tenant,
    name: str,
    scopes_requested: str | list[str] | None = None,
    expires_at: datetime | None = None,
    machines: list[str] | None = None,
    allowed_cidrs: list[str] | None = None,
    rate_limit: dict | None = None,
    created_by=None,
    client_ip: str | None = None,
) -> IssuedApiKey:
    """Issue a key. `scopes_requested` may be scope and preset names; None means the default.

    `machines` (external ids; None = every machine), `allowed_cidrs` (None or
    [] = anywhere) and `rate_limit` (None = the tier's caps) restrict it.
    """
    errors: dict[str, list[str]] = {}
    try:
        name, granted = api_key_validate(name=name, scopes_requested=scopes_requested, expires_at=expires_at)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    restrictions = _clean_restrictions(
        tenant=tenant,
        machines=machines,
        allowed_cidrs=allowed_cidrs or [],
        rate_limit=rate_limit,
        errors=errors,
    )
    if errors:
        raise ValidationError(errors)
    secret = keys.generate_key()
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        prefix=keys.display_prefix(secret),
        key_digest=keys.digest(secret),
        scopes=granted,
        expires_at=expires_at,
        created_by=_actor_user(created_by),
        **restrictions,
    )
    audit_record(
        tenant_id=tenant.id,
        action="api_key.create",
        actor=created_by,
        target=api_key,
        changes={
            "name": name,
            "prefix": api_key.prefix,
            "scopes": granted,
            "expires_at": expires_at.isoformat() if expires_at else None,
            **{field: value for field, value in restrictions.items() if value not in (None, [])},
        },
        client_ip=client_ip,
    )
    return IssuedApiKey(api_key=api_key, secret=secret)


@transaction.atomic
def api_key_update(
    *,
    api_key: ApiKey,
    name: str = _UNSET,
    scopes_requested: str | list[str] = _UNSET,
    expires_at: datetime | None = _UNSET,
    machines: list[str] | None = _UNSET,
    allowed_cidrs: list[str] = _UNSET,
    rate_limit: dict | None = _UNSET,
    actor=None,
    client_ip: str | None = None,
) -> ApiKey:
    """Change a key's name, scopes, expiry or restrictions (PATCH, the admin's change form). The secret stays.

    Only what is given changes; `rate_limit` is replaced as a whole (a member
    left out is null, the tier's cap).
    """
    if api_key.is_revoked:
        raise ValidationError("A revoked key cannot be changed.")
    errors: dict[str, list[str]] = {}
    new_values: dict[str, Any] = _clean_restrictions(
        tenant=api_key.tenant,
        machines=machines,
        allowed_cidrs=allowed_cidrs,
        rate_limit=rate_limit,
        errors=errors,
    )
    if name is not _UNSET:
        new_values["name"] = _clean_name(name, errors)
    if scopes_requested is not _UNSET:
        new_values["scopes"] = _clean_scopes(scopes_requested, errors)
    if expires_at is not _UNSET and expires_at != api_key.expires_at:
        _clean_expires_at(expires_at, errors)
        new_values["expires_at"] = expires_at
    if errors:
        raise ValidationError(errors)
    changes = {
        field: [_jsonable(getattr(api_key, field)), _jsonable(value)]
        for field, value in new_values.items()
        if getattr(api_key, field) != value
    }
    if not changes:
        return api_key
    for field in changes:
        setattr(api_key, field, new_values[field])
    api_key.save(update_fields=list(changes))
    audit_record(
        tenant_id=api_key.tenant_id,
        action="api_key.update",
        actor=actor,
        target=api_key,
        changes=changes,
        client_ip=client_ip,
    )
    return api_key


def _jsonable(value):
    return value.isoformat() if isinstance(value, datetime) else value


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor=None, client_ip: str | None = None) -> ApiKey:
    """Revoke a key; it stops authenticating at once.

    Raises ApiKeyAlreadyRevoked if it was revoked before (also by a concurrent
    request: the conditional update lets exactly one of them win).
    """
    now = timezone.now()
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    if not updated:
        raise ApiKeyAlreadyRevoked(f"API key {api_key.pk} is already revoked.")
    api_key.revoked_at = now
    audit_record(
        tenant_id=api_key.tenant_id,
        action="api_key.revoke",
        actor=actor,
        target=api_key,
        changes={"revoked_at": now.isoformat()},
        client_ip=client_ip,
    )
    return api_key


def api_key_record_use(*, api_key: ApiKey, now: datetime, client_ip: str | None) -> bool:
    """Note that the key was used, at most once per LAST_USED_RESOLUTION; True if written.

    Bookkeeping rather than a change someone made, so not audited. The
    in-memory check saves the query on most requests; the conditional update
    keeps concurrent requests of one key from writing more than once a minute.
    """
    if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return False
    written = (
        ApiKey.objects.filter(pk=api_key.pk)
        .exclude(last_used_at__gt=now - LAST_USED_RESOLUTION)
        .update(last_used_at=now, last_used_ip=client_ip)
    )
    api_key.last_used_at, api_key.last_used_ip = now, client_ip
    return bool(written)


IP_DENIED_SAMPLE_SECONDS = 60


def api_key_ip_denied(*, api_key: ApiKey, client_ip: str | None) -> bool:
    """Record that the key was refused for its address: at most once per key per minute; True if recorded.

    A key used from the wrong network is usually a misconfigured gateway that
    retries every few seconds, so the audit trail gets a sample, not a flood.
    """
    if not sampling.first_in(f"ipdenied:{api_key.pk}", seconds=IP_DENIED_SAMPLE_SECONDS):
        return False
    audit_record(
        tenant_id=api_key.tenant_id,
        action="api_key.ip_denied",
        actor=None,
        target=api_key,
        changes={"ip": client_ip, "allowed_cidrs": list(api_key.allowed_cidrs)},
        client_ip=client_ip,
    )
    return True
