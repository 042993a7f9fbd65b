"""API keys' writes: every one takes `by: Caller` and scopes by `by.tenant_id`."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apikeys import keys, machine_scope, network, ratelimit, sampling, scopes, selectors
from apikeys.models import ApiKey, ApiKeyPolicy
from apikeys.selectors import CURRENT, PREVIOUS
from audit.services import audit_record
from core import errors
from core.caller import Caller

NAME_MAX_LENGTH = ApiKey._meta.get_field("name").max_length
# `last_used_at` is bookkeeping: written at most this often per key, never on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedApiKey:
    """A newly created key and its plaintext: the only moment the plaintext exists."""

    api_key: ApiKey
    secret: str


_UNSET: Any = object()
# A revoked key answers as a missing one, whoever revoked it and when (the API's 404).
REVOKED = "Not found."
EXPIRED_NOT_ROTATED = "An expired key cannot be rotated."
DISABLED_NOT_ROTATED = "A disabled key cannot be rotated; enable it first."


def _own(by: Caller, api_key: ApiKey) -> None:
    """A key of another tenant than the caller's is not found (never acted on)."""
    if api_key.tenant_id != by.tenant_id:
        raise errors.NotFound(REVOKED)


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
    tenant_id,
    tier: Callable[[], str],
    machines: list[str] | None = _UNSET,
    allowed_cidrs: list[str] = _UNSET,
    rate_limit: dict | None = _UNSET,
    errors: dict[str, list[str]],
) -> dict[str, Any]:
    """The model fields for `machines`, `allowed_cidrs` and `rate_limit` (those given), errors by field."""
    values: dict[str, Any] = {}
    if machines is not _UNSET:
        try:
            values["machine_ids"] = machine_scope.resolve_machines(tenant_id=tenant_id, value=machines)
        except ValueError as exc:
            errors["machines"] = exc.args[0]
    if allowed_cidrs is not _UNSET:
        try:
            values["allowed_cidrs"] = network.parse_allowed_cidrs([] if allowed_cidrs is None else allowed_cidrs)
        except ValueError as exc:
            errors["allowed_cidrs"] = exc.args[0]
    if rate_limit is not _UNSET:
        try:
            limits = ratelimit.validate_rate_limit({} if rate_limit is None else rate_limit, tier=tier)
        except ValueError as exc:
            errors["rate_limit"] = exc.args[0]
        else:
            values.update(limits)
    return values


def api_key_validate_restrictions(*, api_key: ApiKey, **given: Any) -> dict[str, Any]:
    """Check `machines`, `allowed_cidrs` and/or `rate_limit` of `api_key` as update would (for forms).

    Returns the model field values; raises ValidationError keyed by the given names.
    """
    problems: dict[str, list[str]] = {}
    values = _clean_restrictions(
        tenant_id=api_key.tenant_id, tier=lambda: api_key.tenant.tier, errors=problems, **given
    )
    if problems:
        raise ValidationError(problems)
    return values


def api_key_validate(
    *, name: str, scopes_requested: str | list[str] | None, expires_at: datetime | None, tenant_id=None
) -> tuple[str, list[str]]:
    """The create rules, for every entry point (API, admin, command).

    With `tenant_id`, the tenant's key policy is checked too. Returns the
    stripped name and the expanded scopes; raises ValidationError keyed by field.
    """
    problems: dict[str, list[str]] = {}
    name = _clean_name(name, problems)
    granted = _clean_scopes(scopes_requested, problems)
    _clean_expires_at(expires_at, problems)
    if tenant_id is not None and "expires_at" not in problems:
        policy_error = policy_expiry_error(
            selectors.api_key_policy_get(tenant_id=tenant_id), expires_at, timezone.now()
        )
        if policy_error:
            problems["expires_at"] = [policy_error]
    if problems:
        raise ValidationError(problems)
    return name, granted


@transaction.atomic
def api_key_create(
    *,
    by: Caller,
    name: str,
    scopes_requested: str | list[str] | None = None,
    expires_at: datetime | None = None,
    machines: list[str] | None = None,
    allowed_cidrs: list[str] | None = None,
    rate_limit: dict | None = None,
) -> IssuedApiKey:
    """Issue a key. `scopes_requested` may be scope and preset names; None means the default.

    `machines` (external ids; None = every machine), `allowed_cidrs` (None or
    [] = anywhere) and `rate_limit` (None = the tier's caps) restrict it.
    """
    tenant_id = by.tenant_id
    problems: dict[str, list[str]] = {}
    try:
        name, granted = api_key_validate(
            name=name, scopes_requested=scopes_requested, expires_at=expires_at, tenant_id=tenant_id
        )
    except ValidationError as exc:
        problems.update(exc.message_dict)
    restrictions = _clean_restrictions(
        tenant_id=tenant_id,
        tier=lambda: selectors.tenant_tier_get(tenant_id=tenant_id),
        machines=machines,
        allowed_cidrs=allowed_cidrs or [],
        rate_limit=rate_limit,
        errors=problems,
    )
    if problems:
        raise ValidationError(problems)
    secret = keys.generate_key()
    api_key = ApiKey.objects.create(
        tenant_id=tenant_id,
        name=name,
        prefix=keys.display_prefix(secret),
        key_digest=keys.digest(secret),
        scopes=granted,
        expires_at=expires_at,
        created_by=by.user,
        **restrictions,
    )
    audit_record(
        by=by,
        action="api_key.create",
        target=api_key,
        changes={
            "name": name,
            "prefix": api_key.prefix,
            "scopes": granted,
            "expires_at": expires_at.isoformat() if expires_at else None,
            **{field: value for field, value in restrictions.items() if value not in (None, [])},
        },
    )
    return IssuedApiKey(api_key=api_key, secret=secret)


@transaction.atomic
def api_key_update(
    *,
    by: Caller,
    api_key: ApiKey,
    name: str = _UNSET,
    scopes_requested: str | list[str] = _UNSET,
    expires_at: datetime | None = _UNSET,
    machines: list[str] | None = _UNSET,
    allowed_cidrs: list[str] = _UNSET,
    rate_limit: dict | None = _UNSET,
    disabled: bool = _UNSET,
) -> ApiKey:
    """Change a key's name, scopes, expiry or restrictions, disable or enable it (PATCH, the admin's
    change form). The secret stays.

    Only what is given changes; `rate_limit` is replaced as a whole (a member
    left out is null, the tier's cap). A new `expires_at` must fit the
    tenant's policy (its lifetime counted from creation or the last rotation).
    """
    _own(by, api_key)
    if api_key.is_revoked:
        raise ValidationError("A revoked key cannot be changed.")
    problems: dict[str, list[str]] = {}
    new_values: dict[str, Any] = _clean_restrictions(
        tenant_id=api_key.tenant_id,
        tier=lambda: api_key.tenant.tier,
        machines=machines,
        allowed_cidrs=allowed_cidrs,
        rate_limit=rate_limit,
        errors=problems,
    )
    if name is not _UNSET:
        new_values["name"] = _clean_name(name, problems)
    if scopes_requested is not _UNSET:
        new_values["scopes"] = _clean_scopes(scopes_requested, problems)
    if expires_at is not _UNSET and expires_at != api_key.expires_at:
        _clean_expires_at(expires_at, problems)
        if "expires_at" not in problems:
            policy_error = policy_expiry_error(
                selectors.api_key_policy_get(tenant_id=api_key.tenant_id),
                expires_at,
                api_key.rotated_at or api_key.created_at,
            )
            if policy_error:
                problems["expires_at"] = [policy_error]
        new_values["expires_at"] = expires_at
    if disabled is not _UNSET:
        new_values["disabled"] = bool(disabled)
    if problems:
        raise ValidationError(problems)
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
    audit_record(by=by, action="api_key.update", target=api_key, changes=changes)
    return api_key


def _jsonable(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _key_event_data(api_key: ApiKey) -> dict:
    """How every api_key.* webhook event names its key."""
    return {"key_id": str(api_key.pk), "name": api_key.name, "prefix": api_key.prefix}


@transaction.atomic
def api_key_revoke(*, by: Caller, api_key: ApiKey) -> ApiKey:
    """Revoke a key; it stops authenticating at once.

    Raises errors.NotFound (404) if it was revoked before (also by a concurrent
    request: the conditional update lets exactly one of them win).
    """
    _own(by, api_key)
    now = timezone.now()
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    if not updated:
        raise errors.NotFound(REVOKED)
    api_key.revoked_at = now
    audit_record(by=by, action="api_key.revoke", target=api_key, changes={"revoked_at": now.isoformat()})
    return api_key


def api_key_record_use(*, api_key: ApiKey, now: datetime, client_ip: str | None, secret: str = CURRENT) -> bool:
    """Note that the key was used, at most once per LAST_USED_RESOLUTION; True if written.

    Bookkeeping rather than a change someone made, so not audited. The
    in-memory check saves the query on most requests; the conditional update
    keeps concurrent requests of one key from writing more than once a minute.
    The first use of a current secret is always written (`secret_used_at`: the
    rotation's lost-answer rule depends on it), and only if that secret is
    still the current one (a rotation may have replaced it meanwhile).
    """
    stale = not api_key.last_used_at or now - api_key.last_used_at >= LAST_USED_RESOLUTION
    if secret == CURRENT and api_key.secret_used_at is None:
        values: dict[str, Any] = {"secret_used_at": now}
        if stale:
            values.update(last_used_at=now, last_used_ip=client_ip)
        written = ApiKey.objects.filter(
            pk=api_key.pk, key_digest=api_key.key_digest, secret_used_at__isnull=True
        ).update(**values)
        for field, value in values.items():
            setattr(api_key, field, value)
        if written:
            return stale
    if not stale:
        return False
    values = {"last_used_at": now, "last_used_ip": client_ip}
    if secret == PREVIOUS:
        values["previous_last_used_at"] = now
        api_key.previous_last_used_at = now
    written = ApiKey.objects.filter(pk=api_key.pk).exclude(last_used_at__gt=now - LAST_USED_RESOLUTION).update(**values)
    api_key.last_used_at, api_key.last_used_ip = now, client_ip
    return bool(written)


IP_DENIED_SAMPLE_SECONDS = 60


@transaction.atomic
def api_key_ip_denied(*, by: Caller, api_key: ApiKey) -> bool:
    """Record that the key was refused for `by.client_ip`: at most once per key per minute; True if recorded.

    A key used from the wrong network is usually a misconfigured gateway that
    retries every few seconds, so the audit trail and the tenant's webhook get
    a sample, not a flood: an `api_key.ip_denied` audit event and webhook.
    `by` is the system on the key's tenant (authentication builds it): the key
    was refused, so it is not the actor.
    """
    from webhooks.services import webhook_event_enqueue

    _own(by, api_key)
    if not sampling.first_in(f"ipdenied:{api_key.pk}", seconds=IP_DENIED_SAMPLE_SECONDS):
        return False
    client_ip = by.client_ip
    audit_record(
        by=by,
        action="api_key.ip_denied",
        target=api_key,
        changes={"ip": client_ip, "allowed_cidrs": list(api_key.allowed_cidrs)},
    )
    webhook_event_enqueue(
        by=by,
        type="api_key.ip_denied",
        data={
            **_key_event_data(api_key),
            "ip": client_ip,
            "allowed_cidrs": list(api_key.allowed_cidrs),
        },
    )
    return True


# --- Policy -------------------------------------------------------------------------------

POLICY_DEFAULTS: dict[str, Any] = {
    "max_lifetime_days": None,
    "require_expiry": False,
    "notify_days_before_expiry": [7, 1],
    "notify_unused_after_days": None,
    "leaked_key_action": ApiKeyPolicy.LeakedKeyAction.REVOKE,
}


# The policy's bounds, for the API's serializer, the admin's form and the service alike.
POLICY_BOUNDS: dict[str, tuple[int, int]] = {"max_lifetime_days": (1, 730), "notify_unused_after_days": (1, 365)}
NOTIFY_DAYS_BOUNDS = (1, 90)


def api_key_policy_validate(values: dict[str, Any]) -> None:
    """The bounds of the policy's numbers (those given); ValidationError by field."""
    problems: dict[str, list[str]] = {}
    for field, (low, high) in POLICY_BOUNDS.items():
        value = values.get(field)
        if value is not None and not low <= value <= high:
            problems[field] = [f"Between {low} and {high}, or empty for none."]
    low, high = NOTIFY_DAYS_BOUNDS
    if any(not low <= day <= high for day in values.get("notify_days_before_expiry") or []):
        problems["notify_days_before_expiry"] = [f"Each must be between {low} and {high}."]
    if problems:
        raise ValidationError(problems)


def policy_expiry_error(policy: ApiKeyPolicy, expires_at: datetime | None, lifetime_start: datetime) -> str | None:
    """Why `expires_at` breaks the policy for a key whose lifetime starts at `lifetime_start`, or None."""
    if expires_at is None:
        if policy.require_expiry or policy.max_lifetime_days is not None:
            return "The tenant's API key policy requires an expiry."
        return None
    if policy.max_lifetime_days is not None and expires_at > lifetime_start + timedelta(days=policy.max_lifetime_days):
        return f"The tenant's API key policy allows a key to live at most {policy.max_lifetime_days} days."
    return None


def policy_violations(policy: ApiKeyPolicy, api_key: ApiKey) -> list[str]:
    """How an existing key breaks the policy (keys are flagged, never rewritten)."""
    if api_key.expires_at is None:
        return ["no_expiry"] if policy.require_expiry or policy.max_lifetime_days is not None else []
    start = api_key.rotated_at or api_key.created_at
    if policy.max_lifetime_days is not None and api_key.expires_at > start + timedelta(days=policy.max_lifetime_days):
        return ["lifetime_exceeds_policy"]
    return []


def _check_policy(*, tenant_id, expires_at: datetime | None, lifetime_start: datetime) -> None:
    error = policy_expiry_error(selectors.api_key_policy_get(tenant_id=tenant_id), expires_at, lifetime_start)
    if error:
        raise ValidationError({"expires_at": [error]})


@transaction.atomic
def api_key_policy_update(*, by: Caller, values: dict[str, Any]) -> tuple[ApiKeyPolicy, str | None]:
    """Replace the tenant's policy (omitted fields take their defaults).

    `values` may carry `webhook_url`; returns the policy and the new webhook
    secret when a new URL was set (shown once). Existing keys are not touched.
    """
    from webhooks.services import webhook_endpoint_set

    unknown = set(values) - set(POLICY_DEFAULTS) - {"webhook_url"}
    if unknown:
        raise ValidationError({field: ["Unknown field."] for field in sorted(unknown)})
    api_key_policy_validate(values)
    tenant_id = by.tenant_id
    policy = ApiKeyPolicy.objects.select_for_update().for_tenant(tenant_id).first() or ApiKeyPolicy(tenant_id=tenant_id)
    before = {field: getattr(policy, field) for field in POLICY_DEFAULTS}
    new = {**POLICY_DEFAULTS, **{k: v for k, v in values.items() if k != "webhook_url"}}
    new["notify_days_before_expiry"] = sorted(set(new["notify_days_before_expiry"]), reverse=True)
    for field, value in new.items():
        setattr(policy, field, value)
    policy.save()
    endpoint_change = webhook_endpoint_set(by=by, url=values.get("webhook_url"))
    changes = {field: [before[field], new[field]] for field in POLICY_DEFAULTS if before[field] != new[field]}
    if endpoint_change.changed:
        changes["webhook_url"] = [endpoint_change.old_origin, endpoint_change.new_origin]
    audit_record(by=by, action="api_key_policy.update", target=policy, changes=changes)
    return policy, endpoint_change.secret


# --- Rotation -----------------------------------------------------------------------------

MAX_OVERLAP_SECONDS = 7 * 24 * 3600
DEFAULT_OVERLAP_SECONDS = 3600
SELF_ROTATION_MIN_OVERLAP_SECONDS = 3600
SELF_ROTATIONS_PER_DAY = 10
ROTATE_WITH_CURRENT = "Rotate with the current secret of this key."


def _locked_live_key(by: Caller, api_key: ApiKey) -> ApiKey:
    """The key's row, locked until the transaction ends; revoked or another tenant's → errors.NotFound (404)."""
    _own(by, api_key)
    locked = ApiKey.objects.select_for_update().filter(pk=api_key.pk).first()
    if locked is None or locked.is_revoked:
        raise errors.NotFound(REVOKED)
    return locked


def _rotate_locked(
    *, api_key: ApiKey, overlap_seconds: int, expires_at: datetime | None, now: datetime
) -> tuple[str, dict[str, Any]]:
    """Swap in a new secret on a locked row; returns it and the audit changes."""
    secret = keys.generate_key()
    lost_answer = api_key.secret_used_at is None
    if not lost_answer:
        # The current secret was used: it becomes the previous one, and any older previous ends now.
        api_key.previous_prefix = api_key.prefix
        api_key.previous_key_digest = api_key.key_digest
        api_key.previous_valid_until = now + timedelta(seconds=overlap_seconds)
        api_key.previous_last_used_at = api_key.last_used_at
    # else: the current secret was never used (its answer was lost): it is replaced, and the
    # previous secret, which the fleet may still use, keeps its deadline.
    old_prefix = api_key.prefix
    api_key.prefix = keys.display_prefix(secret)
    api_key.key_digest = keys.digest(secret)
    api_key.secret_used_at = None
    api_key.rotated_at = now
    changes: dict[str, Any] = {
        "prefix": [old_prefix, api_key.prefix],
        "replaced_unused_secret": lost_answer,
        "previous_prefix": api_key.previous_prefix,
        "previous_valid_until": _jsonable(api_key.previous_valid_until),
    }
    if expires_at is not _UNSET and expires_at != api_key.expires_at:
        changes["expires_at"] = [_jsonable(api_key.expires_at), _jsonable(expires_at)]
        api_key.expires_at = expires_at
    api_key.save(
        update_fields=[
            "prefix",
            "key_digest",
            "secret_used_at",
            "rotated_at",
            "previous_prefix",
            "previous_key_digest",
            "previous_valid_until",
            "previous_last_used_at",
            "expires_at",
        ]
    )
    return secret, changes


def _check_rotatable(api_key: ApiKey, now: datetime) -> None:
    if api_key.is_expired(now):
        raise errors.Conflict(EXPIRED_NOT_ROTATED)
    if api_key.disabled:
        raise errors.Conflict(DISABLED_NOT_ROTATED)


def _validate_overlap(overlap_seconds: int, minimum: int) -> None:
    if not isinstance(overlap_seconds, int) or isinstance(overlap_seconds, bool):
        raise ValidationError({"overlap_seconds": ["A whole number of seconds."]})
    if not minimum <= overlap_seconds <= MAX_OVERLAP_SECONDS:
        raise ValidationError(
            {"overlap_seconds": [f"Ensure this value is between {minimum} and {MAX_OVERLAP_SECONDS}."]}
        )


def _enqueue_rotated(by: Caller, api_key: ApiKey, *, self_rotation: bool) -> None:
    from webhooks.services import webhook_event_enqueue

    webhook_event_enqueue(
        by=by,
        type="api_key.rotated",
        data={
            **_key_event_data(api_key),
            "previous_prefix": api_key.previous_prefix,
            "previous_valid_until": _jsonable(api_key.previous_valid_until),
            "self_rotation": self_rotation,
        },
    )


@transaction.atomic
def api_key_rotate(
    *,
    by: Caller,
    api_key: ApiKey,
    overlap_seconds: int = DEFAULT_OVERLAP_SECONDS,
    expires_at: datetime | None = _UNSET,
) -> IssuedApiKey:
    """Give the key a new secret; the used old one keeps working for `overlap_seconds`.

    The row is locked for the whole swap, so concurrent rotations run one
    after the other and at most two secrets are ever live. Revoked →
    errors.NotFound (404); expired or disabled → errors.Conflict (409).
    """
    _validate_overlap(overlap_seconds, 0)
    problems: dict[str, list[str]] = {}
    if expires_at is not _UNSET:
        _clean_expires_at(expires_at, problems)
    if problems:
        raise ValidationError(problems)
    api_key = _locked_live_key(by, api_key)
    now = timezone.now()
    _check_rotatable(api_key, now)
    _check_policy(
        tenant_id=api_key.tenant_id,
        expires_at=api_key.expires_at if expires_at is _UNSET else expires_at,
        lifetime_start=now,
    )
    secret, changes = _rotate_locked(api_key=api_key, overlap_seconds=overlap_seconds, expires_at=expires_at, now=now)
    audit_record(by=by, action="api_key.rotate", target=api_key, changes=changes)
    _enqueue_rotated(by, api_key, self_rotation=False)
    return IssuedApiKey(api_key=api_key, secret=secret)


@transaction.atomic
def api_key_self_rotate(*, by: Caller, overlap_seconds: int = DEFAULT_OVERLAP_SECONDS) -> IssuedApiKey:
    """A key rotating itself (POST /agent/key/rotate): `by.principal` is the key's ApiKeyPrincipal.

    With the current secret: as api_key_rotate. With the previous secret,
    within its overlap, while the current one was never used: the unused
    current secret is replaced (the agent lost the answer and retries).
    Anything else → PermissionDenied, so a stolen old secret cannot lock the
    real agent out. At most SELF_ROTATIONS_PER_DAY per key per 24 hours.
    """
    principal = by.principal
    if not by.is_api_key:
        raise PermissionDenied(ROTATE_WITH_CURRENT)
    _validate_overlap(overlap_seconds, SELF_ROTATION_MIN_OVERLAP_SECONDS)
    api_key = _locked_live_key(by, principal.api_key)
    now = timezone.now()
    if principal.secret == PREVIOUS:
        # Re-read under the lock: the secret the agent holds must still be this key's previous one.
        if api_key.secret_used_at is not None or api_key.previous_key_digest != principal.api_key.previous_key_digest:
            raise PermissionDenied(ROTATE_WITH_CURRENT)
    elif api_key.key_digest != principal.api_key.key_digest:
        raise PermissionDenied(ROTATE_WITH_CURRENT)  # rotated meanwhile by someone else
    _check_rotatable(api_key, now)
    recent = selectors.api_key_self_rotations_since(api_key=api_key, since=now - timedelta(days=1))
    if len(recent) >= SELF_ROTATIONS_PER_DAY:
        wait = max(1, int((recent[0] + timedelta(days=1) - now).total_seconds()))
        raise errors.Throttled(
            f"A key may rotate itself at most {SELF_ROTATIONS_PER_DAY} times in 24 hours.", retry_after=wait
        )
    _check_policy(tenant_id=api_key.tenant_id, expires_at=api_key.expires_at, lifetime_start=now)
    secret, changes = _rotate_locked(api_key=api_key, overlap_seconds=overlap_seconds, expires_at=_UNSET, now=now)
    changes["with_secret"] = principal.secret
    audit_record(by=by, action="api_key.self_rotate", target=api_key, changes=changes)
    _enqueue_rotated(by, api_key, self_rotation=True)
    return IssuedApiKey(api_key=api_key, secret=secret)


# --- Bulk revoke ----------------------------------------------------------------------------


def api_key_bulk_revoke(
    *,
    by: Caller,
    ids: list | None = None,
    created_before: datetime | None = None,
    unused_since: datetime | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Revoke the tenant's live keys that match every given criterion.

    Unknown and other tenants' ids are ignored. Each key is revoked by
    api_key_revoke (its own audit event), plus one `api_key.bulk_revoke`.
    """
    if ids is None and created_before is None and unused_since is None:
        raise ValidationError({"detail": ["Give at least one of ids, created_before, unused_since."]})
    queryset = selectors.api_key_list(
        tenant_id=by.tenant_id,
        live_at=timezone.now(),
        ids=ids,
        created_before=created_before,
        unused_since=unused_since,
    )
    matched = list(queryset.order_by("created_at").values_list("pk", flat=True))
    if dry_run:
        return {"revoked": 0, "would_revoke": len(matched), "ids": [str(pk) for pk in matched]}
    revoked: list[str] = []
    with transaction.atomic():
        for api_key in ApiKey.objects.filter(pk__in=matched):
            try:
                api_key_revoke(by=by, api_key=api_key)
            except errors.NotFound:
                continue  # a concurrent revoke got there first
            revoked.append(str(api_key.pk))
        audit_record(
            by=by,
            action="api_key.bulk_revoke",
            target_type="apikey",
            changes={
                "criteria": {
                    "ids": [str(i) for i in ids] if ids is not None else None,
                    "created_before": _jsonable(created_before),
                    "unused_since": _jsonable(unused_since),
                },
                "revoked": revoked,
            },
        )
    return {"revoked": len(revoked)}
