from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apikeys import keys, scopes
from apikeys.models import ApiKey
from audit.services import audit_record
from tenants.models import Tenant


@dataclass(frozen=True)
class IssuedApiKey:
    """A newly created key and its plaintext: the only moment the plaintext exists."""

    api_key: ApiKey
    secret: str


@transaction.atomic
def api_key_create(
    *,
    tenant: Tenant,
    name: str,
    scopes_requested: str | list[str] | None = None,
    expires_at: datetime | None = None,
    created_by=None,
    client_ip: str | None = None,
) -> IssuedApiKey:
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["A key needs a name."]
    try:
        granted = scopes.expand_scopes(scopes.DEFAULT_SCOPES if scopes_requested is None else scopes_requested)
        if not granted:
            errors["scopes"] = ["Grant at least one scope."]
    except scopes.UnknownScope as exc:
        errors["scopes"] = [str(exc)]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = ["The expiry must be in the future."]
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
        created_by=created_by if getattr(created_by, "is_api_key", False) is False else None,
    )
    audit_record(
        tenant_id=tenant.id,
        action="api_key.create",
        actor=created_by,
        target=api_key,
        changes={"name": name, "scopes": granted, "expires_at": expires_at.isoformat() if expires_at else None},
        client_ip=client_ip,
    )
    return IssuedApiKey(api_key=api_key, secret=secret)
