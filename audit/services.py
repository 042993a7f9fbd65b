"""The one function that records what happened. Services call it; views never do."""

import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder

from audit.models import AuditEvent
from core import credentials
from core.caller import Caller

logger = logging.getLogger(__name__)

REDACTED = "***"
# Keys whose values are never written to the audit log, whatever a caller passes.
_SECRET_MARKERS = ("password", "secret", "digest", "token", "api_key", "authorization")
# Values that are credentials whatever their key is called: an API key or enrollment token, a JWT.
_SECRET_VALUE = re.compile(f"{credentials.SECRET.pattern}|{credentials.JWT.pattern}")


def _is_secret_key(key: str) -> bool:
    return any(marker in key.lower() for marker in _SECRET_MARKERS)


def _scrub(value: Any) -> Any:
    """Redact secrets at any depth: by the key they sit under, or by what they look like."""
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_key(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


def _jsonable(changes: dict[str, Any]) -> dict[str, Any]:
    # Callers may pass datetimes, UUIDs or Decimals; store what JSON can hold.
    return json.loads(json.dumps(changes, cls=DjangoJSONEncoder))


@dataclass(frozen=True)
class NamedActor:
    """An actor that is neither a user nor an API key: a public leak report, an enrollment token."""

    actor_type: str
    label: str
    pk: UUID | None = None
    tenant_id: UUID | None = None
    is_api_key = False
    is_user = False


PUBLIC_REPORT = NamedActor(AuditEvent.ActorType.PUBLIC_REPORT, "public_report")


def _actor_fields(actor: Any) -> tuple[str, UUID | None, str]:
    if isinstance(actor, NamedActor):
        return actor.actor_type, actor.pk, actor.label
    if actor is None:
        return AuditEvent.ActorType.SYSTEM, None, "system"
    if actor.is_api_key:
        return AuditEvent.ActorType.API_KEY, actor.pk, str(actor)
    return AuditEvent.ActorType.USER, actor.pk, str(actor)


def audit_record(
    *,
    by: Caller,
    action: str,
    target: Any = None,
    target_type: str = "",
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record `action` done `by` a Caller: its principal (None: the system), tenant and address.

    `target` is any model instance; its type, pk and str() are kept. `changes`
    is scrubbed of secrets (by key name and by value shape) before it is
    stored, so a careless caller cannot put a password or a key in the log.
    """
    tenant_id = by.tenant_id
    actor_type, actor_id, actor_label = _actor_fields(by.principal)
    event = AuditEvent.objects.create(
        tenant_id=tenant_id,
        action=action,
        actor_type=actor_type,
        actor_id=actor_id,
        actor_label=actor_label[:254],
        target_type=target_type or (target._meta.model_name if target is not None else ""),
        target_id=str(target.pk) if target is not None else "",
        target_label=_scrub(str(target))[:254] if target is not None else "",
        changes=_scrub(_jsonable(changes or {})),
        client_ip=by.client_ip or None,
    )
    logger.info(
        "audit %s tenant=%s actor=%s target=%s:%s",
        action,
        tenant_id,
        actor_label,
        event.target_type,
        event.target_id,
        # The JSON log's fields (core.logging): one line per audit event.
        extra={
            "audit_event": str(event.pk),
            "action": action,
            "tenant": str(tenant_id),
            "actor_type": actor_type,
            "actor_id": actor_id,
            "target_type": event.target_type,
            "target_id": event.target_id,
        },
    )
    return event
