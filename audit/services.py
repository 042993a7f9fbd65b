"""The one function that records what happened. Services call it; views never do."""

import logging
from typing import Any
from uuid import UUID

from audit.models import AuditEvent

logger = logging.getLogger(__name__)

# Keys whose values are never written to the audit log, whatever a caller passes.
_SECRET_MARKERS = ("password", "secret", "key_digest", "token", "api_key")


def _scrub(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: "***" if any(m in k.lower() for m in _SECRET_MARKERS) else v for k, v in changes.items()}


def audit_record(
    *,
    tenant_id: UUID,
    action: str,
    actor: Any = None,
    target: Any = None,
    target_type: str = "",
    changes: dict[str, Any] | None = None,
    client_ip: str | None = None,
) -> AuditEvent:
    """Record `action` by `actor` (a user, an API-key principal or None for the system).

    `target` is any model instance; its type, pk and str() are kept.
    """
    if actor is None:
        actor_type, actor_id, actor_label = AuditEvent.ActorType.SYSTEM, None, "system"
    elif getattr(actor, "is_api_key", False):
        actor_type, actor_id, actor_label = AuditEvent.ActorType.API_KEY, actor.pk, str(actor)
    else:
        actor_type, actor_id, actor_label = AuditEvent.ActorType.USER, actor.pk, str(actor)
    event = AuditEvent.objects.create(
        tenant_id=tenant_id,
        action=action,
        actor_type=actor_type,
        actor_id=actor_id,
        actor_label=actor_label[:254],
        target_type=target_type or (target._meta.model_name if target is not None else ""),
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:254] if target is not None else "",
        changes=_scrub(changes or {}),
        client_ip=client_ip,
    )
    logger.info(
        "audit %s tenant=%s actor=%s target=%s:%s", action, tenant_id, actor_label, event.target_type, event.target_id
    )
    return event
