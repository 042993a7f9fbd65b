"""Enrollment: edge devices mint their own keys with a short-lived token (services).

An admin creates a token (`hlte_…`, shown once) with the scopes, machines and
key lifetime its keys get and a number of uses; each device presents it once
at `POST /agent/enroll` with its hostname and receives a key of its own, named
`<token name>/<hostname>`. One live key per hostname and token: a second
enrollment of a hostname is refused (409), so a token baked into an image
cannot take over a working device, unless the device asks to `replace` a key
that was never used (its answer was lost), which does not count as a use.

Races: the token row is locked for the enrollment and a use is counted with a
conditional UPDATE (`uses < max_uses`, also a check constraint); two live keys
for one hostname are refused by a partial unique constraint, whatever the lock.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed

from apikeys import keys, machine_scope, scopes, selectors
from apikeys.models import ApiKey, EnrollmentToken
from apikeys.services import _check_policy, api_key_revoke
from audit.services import NamedActor, audit_record
from core import errors
from core.caller import Caller

INVALID_TOKEN = "Invalid enrollment token."
MAX_USES = 1000
MAX_TOKEN_LIFETIME = timedelta(days=7)
MAX_KEY_LIFETIME_DAYS = 730
HOSTNAME = re.compile(r"[A-Za-z0-9.-]{1,63}")
HOSTNAME_TAKEN = (
    'This hostname already has a key from this token; send "replace": true only if that key was never used.'
)
NAME_MAX_LENGTH = EnrollmentToken._meta.get_field("name").max_length


class EnrollmentRefused(AuthenticationFailed):
    """The credential does not enroll anything: one answer for every reason, so none is told apart."""

    default_detail = INVALID_TOKEN
    default_code = "enrollment_token_invalid"
    metrics_auth_failure = "enrollment_invalid"  # core.metrics, counted by core.exceptions


@dataclass(frozen=True)
class IssuedEnrollmentToken:
    token: EnrollmentToken
    secret: str  # shown once


@dataclass(frozen=True)
class Enrollment:
    api_key: ApiKey
    secret: str  # shown once
    replaced: bool


def _as_actor(token: EnrollmentToken) -> NamedActor:
    return NamedActor("enrollment_token", f"enrollment token {token.name} ({token.prefix}…)"[:254], token.pk)


def _as_caller(token: EnrollmentToken, by: Caller) -> Caller:
    """The token acting on its tenant, from `by`'s address (the audit trail's actor)."""
    return Caller.acting(_as_actor(token), client_ip=by.client_ip, tenant_id=token.tenant_id)


def enrollment_token_find(*, secret: str, now: datetime | None = None) -> EnrollmentToken:
    """The usable token behind `secret`; EnrollmentRefused for anything else, malformed ones without a query."""
    if not keys.is_well_formed(secret, prefix=keys.ENROLLMENT_TOKEN_PREFIX):
        raise EnrollmentRefused()
    for token in selectors.enrollment_token_list_by_secret(secret=secret).select_related("tenant"):
        if keys.matches(secret, token.token_digest):
            if not token.is_usable(now):
                break
            return token
    raise EnrollmentRefused()


def enrollment_token_validate(
    *,
    tenant_id,
    name: str,
    expires_at: datetime | None,
    scopes_requested: str | list[str] | None = None,
    machines: list[str] | None = None,
    max_uses: int = 1,
    key_expires_in_days: int | None = None,
) -> dict[str, Any]:
    """The token's model fields from what an admin asked for; ValidationError by field (API and admin alike)."""
    now = timezone.now()
    problems: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name:
        problems["name"] = ["A token needs a name."]
    elif len(name) > NAME_MAX_LENGTH or "/" in name:
        problems["name"] = [f"At most {NAME_MAX_LENGTH} characters, without '/'."]
    granted: list[str] = []
    try:
        granted = scopes.expand_scopes(scopes.DEFAULT_SCOPES if scopes_requested is None else scopes_requested)
        if not granted:
            problems["scopes"] = ["Grant at least one scope."]
    except scopes.UnknownScope as exc:
        problems["scopes"] = [str(exc)]
    machine_ids = None
    try:
        machine_ids = machine_scope.resolve_machines(tenant_id=tenant_id, value=machines)
    except ValueError as exc:
        problems["machines"] = exc.args[0]
    if isinstance(max_uses, bool) or not isinstance(max_uses, int) or not 1 <= max_uses <= MAX_USES:
        problems["max_uses"] = [f"Ensure this value is between 1 and {MAX_USES}."]
    if expires_at is None:
        problems["expires_at"] = ["An enrollment token needs an expiry, within 7 days."]
    elif not now < expires_at <= now + MAX_TOKEN_LIFETIME:
        problems["expires_at"] = ["Ensure the expiry is in the future and within 7 days."]
    if key_expires_in_days is not None and not 1 <= key_expires_in_days <= MAX_KEY_LIFETIME_DAYS:
        problems["key_expires_in_days"] = [f"Ensure this value is between 1 and {MAX_KEY_LIFETIME_DAYS}, or null."]
    if not problems:
        key_expiry = now + timedelta(days=key_expires_in_days) if key_expires_in_days else None
        try:
            _check_policy(tenant_id=tenant_id, expires_at=key_expiry, lifetime_start=now)
        except ValidationError as exc:
            problems["key_expires_in_days"] = exc.message_dict["expires_at"]
    if problems:
        raise ValidationError(problems)
    return {
        "name": name,
        "scopes": granted,
        "machine_ids": machine_ids,
        "max_uses": max_uses,
        "expires_at": expires_at,
        "key_expires_in_days": key_expires_in_days,
    }


@transaction.atomic
def enrollment_token_create(
    *,
    by: Caller,
    name: str,
    expires_at: datetime | None,
    scopes_requested: str | list[str] | None = None,
    machines: list[str] | None = None,
    max_uses: int = 1,
    key_expires_in_days: int | None = None,
) -> IssuedEnrollmentToken:
    values = enrollment_token_validate(
        tenant_id=by.tenant_id,
        name=name,
        expires_at=expires_at,
        scopes_requested=scopes_requested,
        machines=machines,
        max_uses=max_uses,
        key_expires_in_days=key_expires_in_days,
    )
    secret = keys.generate_key(prefix=keys.ENROLLMENT_TOKEN_PREFIX)
    token = EnrollmentToken.objects.create(
        tenant_id=by.tenant_id,
        prefix=keys.display_prefix(secret),
        token_digest=keys.digest(secret),
        created_by=by.user,
        **values,
    )
    audit_record(by=by, action="enrollment_token.create", target=token, changes={"prefix": token.prefix, **values})
    return IssuedEnrollmentToken(token=token, secret=secret)


@transaction.atomic
def enrollment_token_delete(*, by: Caller, token: EnrollmentToken, revoke_keys: bool = False) -> int:
    """Delete a token (it enrolls nothing more); with `revoke_keys`, revoke every key it enrolled. The count revoked."""
    if token.tenant_id != by.tenant_id:
        raise errors.NotFound()
    now = timezone.now()
    if not EnrollmentToken.objects.filter(pk=token.pk, deleted_at__isnull=True).update(deleted_at=now):
        return 0  # deleted meanwhile: the other request recorded it
    token.deleted_at = now
    revoked = 0
    if revoke_keys:
        for api_key in selectors.api_key_list(tenant_id=by.tenant_id).filter(enrollment_token=token).order_by("pk"):
            try:
                api_key_revoke(by=by, api_key=api_key)
            except errors.NotFound:
                continue
            revoked += 1
    audit_record(
        by=by,
        action="enrollment_token.delete",
        target=token,
        changes={"deleted_at": now, "revoke_keys": revoke_keys, "keys_revoked": revoked},
    )
    return revoked


def _clean_hostname(hostname: object) -> str:
    if not isinstance(hostname, str) or not HOSTNAME.fullmatch(hostname):
        raise ValidationError({"hostname": ["1 to 63 characters of A-Z, a-z, 0-9, '.' and '-'."]})
    return hostname.lower()


def _machines_for(token: EnrollmentToken, machines: list[str] | None) -> list[str] | None:
    """The stored machine ids of the device's key: the token's, or the subset the device asked for."""
    if machines is None:
        return token.machine_ids
    try:
        asked = machine_scope.resolve_machines(tenant_id=token.tenant_id, value=machines)
    except ValueError as exc:
        raise ValidationError({"machines": exc.args[0]}) from None
    if token.machine_ids is not None and not set(asked) <= set(token.machine_ids):
        raise ValidationError({"machines": ["Ask only for machines of the enrollment token."]})
    return asked


def _never_used(api_key: ApiKey) -> bool:
    return api_key.secret_used_at is None and api_key.last_used_at is None


@transaction.atomic
def agent_enroll(
    *,
    by: Caller,
    hostname: str,
    agent_version: str | None = None,
    machines: list[str] | None = None,
    replace: bool = False,
) -> Enrollment:
    """Mint the device's key; `by.principal` is the enrollment token's principal.

    EnrollmentRefused (401), ValidationError (400) or errors.Conflict (409).
    """
    now = timezone.now()
    hostname = _clean_hostname(hostname)
    token = getattr(by.principal, "token", None)
    locked = EnrollmentToken.objects.select_for_update().filter(pk=token.pk).first() if token else None
    if locked is None or not locked.is_usable(now):
        raise EnrollmentRefused()
    token = locked
    as_token = _as_caller(token, by)
    machine_ids = _machines_for(token, machines)
    key_expiry = now + timedelta(days=token.key_expires_in_days) if token.key_expires_in_days else None
    _check_policy(tenant_id=token.tenant_id, expires_at=key_expiry, lifetime_start=now)

    replaced = False
    current = (
        selectors.api_key_list(tenant_id=token.tenant_id)
        .filter(enrollment_token=token, enrolled_hostname=hostname)
        .first()
    )
    if current is not None and current.is_expired(now):
        # Not live any more: out of the way of the one-unrevoked-key constraint, and counted as a new use.
        api_key_revoke(by=as_token, api_key=current)
        current = None
    if current is not None:
        if not (replace and _never_used(current)):
            raise errors.Conflict(HOSTNAME_TAKEN)
        api_key_revoke(by=as_token, api_key=current)
        replaced = True
    elif not EnrollmentToken.objects.filter(pk=token.pk, uses__lt=F("max_uses")).update(uses=F("uses") + 1):
        raise EnrollmentRefused()  # used up

    secret = keys.generate_key()
    try:
        with transaction.atomic():
            api_key = ApiKey.objects.create(
                tenant_id=token.tenant_id,
                name=f"{token.name}/{hostname}",
                prefix=keys.display_prefix(secret),
                key_digest=keys.digest(secret),
                scopes=list(token.scopes),
                machine_ids=machine_ids,
                expires_at=key_expiry,
                enrollment_token=token,
                enrolled_hostname=hostname,
            )
    except IntegrityError:
        raise errors.Conflict(HOSTNAME_TAKEN) from None
    audit_record(
        by=as_token,
        action="api_key.enroll",
        target=api_key,
        changes={
            "hostname": hostname,
            "agent_version": (agent_version or "")[:64] or None,
            "prefix": api_key.prefix,
            "scopes": api_key.scopes,
            "machine_ids": machine_ids,
            "expires_at": key_expiry,
            "replaced": replaced,
        },
    )
    return Enrollment(api_key=api_key, secret=secret, replaced=replaced)
