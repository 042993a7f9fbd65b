"""The webhook outbox: enqueue in the causing transaction, send later, record every attempt.

Other apps call `webhook_event_enqueue(by=..., type=..., data=...)` (the event is `by.tenant_id`'s) inside
their own transaction; nothing is sent until it commits, and never inside the
request: the Celery worker sends it (a task per delivery plus a sweep every
minute), or, in the embedded mode without a broker, a background thread.
"""

import json
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from core import errors, metrics
from core.caller import Caller
from settings_app.crypto import decrypt_secret, encrypt_secret
from webhooks import selectors, sender
from webhooks.models import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

EVENT_TYPES = ("api_key.expiring", "api_key.unused", "api_key.exposed", "api_key.ip_denied", "api_key.rotated")
# Delay before each attempt, counted from the previous one: at once, 1 min, 5 min, 30 min, 2 h, 6 h.
RETRY_DELAYS = (timedelta(0), timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30),
                timedelta(hours=2), timedelta(hours=6))  # fmt: skip
MAX_ATTEMPTS = len(RETRY_DELAYS)
CLAIM_FOR = timedelta(seconds=60)  # longer than one attempt's 5 s deadline
KEEP_DELIVERIES = timedelta(days=30)
NO_ENDPOINT = "No webhook URL is set."


def origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# --- The endpoint ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointChange:
    changed: bool
    secret: str | None  # the new signing secret, when a new URL was set: shown once
    old_origin: str | None
    new_origin: str | None


WEBHOOK_URL_SCHEME = "Enter an http:// or https:// URL."


def webhook_url_scheme_ok(url: str) -> bool:
    return url.strip().lower().startswith(("http://", "https://"))


def webhook_url_validate(url: str) -> str:
    """A webhook URL about to be saved, stripped; ValidationError on `webhook_url` (API and admin alike)."""
    if not webhook_url_scheme_ok(url):
        raise ValidationError({"webhook_url": [WEBHOOK_URL_SCHEME]})
    try:
        return sender.validate_webhook_url(url)
    except sender.WebhookUrlRefused as exc:
        raise ValidationError({"webhook_url": [str(exc)]}) from None


def webhook_endpoint_set(*, by: Caller, url: str | None) -> EndpointChange:
    """Set, keep or clear the tenant's webhook URL. A new URL gets a new secret (returned once).

    Not audited here: the caller's own change (the key policy) records the origins.
    """
    tenant_id = by.tenant_id
    current = WebhookEndpoint.objects.select_for_update().for_tenant(tenant_id).first()
    old_url = current.url if current else None
    if url is not None and url.strip() != old_url:
        url = webhook_url_validate(url)
    url = url.strip() if url is not None else None
    if url == old_url:
        return EndpointChange(False, None, origin_of(old_url), origin_of(url))
    if url is None:
        current.delete()
        return EndpointChange(True, None, origin_of(old_url), None)
    secret = "whsec_" + secrets.token_urlsafe(32)
    WebhookEndpoint.objects.update_or_create(
        tenant_id=tenant_id, defaults={"url": url, "secret_encrypted": encrypt_secret(secret)}
    )
    return EndpointChange(True, secret, origin_of(old_url), origin_of(url))


# --- Enqueue ---------------------------------------------------------------------------------


def webhook_event_enqueue(*, by: Caller, type: str, data: dict[str, Any]) -> WebhookDelivery | None:
    """Put an event of `by.tenant_id` in the outbox, in the caller's transaction; None without a webhook URL.

    It is sent once that transaction commits (and only if it does).
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"Unknown webhook event type {type!r}.")
    tenant_id = by.tenant_id
    if not WebhookEndpoint.objects.for_tenant(tenant_id).exists():
        return None
    now = timezone.now()
    event_id = uuid.uuid4()
    delivery = WebhookDelivery.objects.create(
        tenant_id=tenant_id,
        event_id=event_id,
        type=type,
        payload={
            "id": str(event_id),
            "type": type,
            "created_at": now.isoformat().replace("+00:00", "Z"),
            "tenant_id": str(tenant_id),
            "data": data,
        },
        next_attempt_at=now,
    )
    transaction.on_commit(lambda: _dispatch(delivery.pk))
    metrics.webhook_event_enqueued(event_type=type)
    return delivery


def _dispatch(delivery_id, countdown: float = 0) -> None:
    """Hand a delivery to whoever sends: the worker, or the embedded sender thread."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        from kombu.exceptions import OperationalError as BrokerError

        from webhooks.tasks import webhook_delivery_attempt_task

        try:
            webhook_delivery_attempt_task.apply_async(args=[str(delivery_id)], countdown=countdown)
        except (BrokerError, OSError) as exc:
            # The broker is down: the delivery is in the outbox already (committed), and the
            # minute's sweep (webhooks.send_due) sends it once the broker is back. The
            # request that caused it must not fail for that.
            logger.warning(
                "webhook delivery %s not handed to a worker: the broker does not answer (%s); the sweep will send it",
                delivery_id,
                type(exc).__name__,
            )
    elif settings.WEBHOOK_EMBEDDED_SENDER:
        EmbeddedSender.wake()


# --- Send -----------------------------------------------------------------------------------


def _claim(delivery_id, now: datetime) -> WebhookDelivery | None:
    """Take a due delivery for one attempt; None if it is not due or another sender holds it."""
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .update(claimed_until=now + CLAIM_FOR)
    )
    return WebhookDelivery.objects.filter(pk=delivery_id).first() if claimed else None


def webhook_delivery_attempt(*, delivery_id, now: datetime | None = None) -> WebhookDelivery | None:
    """Make the next attempt of a due delivery and record it; None if it was not due.

    Each attempt is signed afresh; the body and event id stay. A refused
    address ends the delivery at once (never retried); otherwise a failure is
    retried on RETRY_DELAYS until MAX_ATTEMPTS, then recorded as failed.
    """
    now = now or timezone.now()
    delivery = _claim(delivery_id, now)
    if delivery is None:
        return None
    endpoint = selectors.webhook_endpoint_get(tenant_id=delivery.tenant_id)
    secret = decrypt_secret(endpoint.secret_encrypted) if endpoint else None
    seconds = None
    if endpoint is None or secret is None:
        outcome = sender.AttemptOutcome(error=NO_ENDPOINT, refused=True)
    else:
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        started = time.perf_counter()
        outcome = sender.post_event(endpoint.url, body, secret)
        seconds = time.perf_counter() - started
    delivery.attempts += 1
    delivery.status_code = outcome.status_code
    delivery.claimed_until = None
    if outcome.delivered:
        delivery.status, delivery.delivered_at, delivery.error, delivery.next_attempt_at = "delivered", now, "", None
    elif outcome.refused or delivery.attempts >= MAX_ATTEMPTS:
        delivery.status, delivery.error, delivery.next_attempt_at = "failed", outcome.error, None
    else:
        delivery.error = outcome.error
        delivery.next_attempt_at = now + RETRY_DELAYS[delivery.attempts]
    delivery.save(
        update_fields=["attempts", "status_code", "claimed_until", "status", "delivered_at", "error", "next_attempt_at"]
    )
    metrics.webhook_delivery_attempted(
        event_type=delivery.type, outcome=_metrics_outcome(delivery, outcome), seconds=seconds
    )
    return delivery


def _metrics_outcome(delivery: WebhookDelivery, outcome) -> str:
    if outcome.delivered:
        return "delivered"
    if outcome.refused:
        return "refused"
    return "gave_up" if delivery.status == "failed" else "failed"


def webhook_deliveries_due(*, now: datetime | None = None) -> list:
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:500]
    )


def webhook_deliveries_send_due(*, now: datetime | None = None) -> int:
    """Attempt every due delivery (the sweep); returns how many were attempted."""
    attempted = 0
    for delivery_id in webhook_deliveries_due(now=now):
        if webhook_delivery_attempt(delivery_id=delivery_id, now=now) is not None:
            attempted += 1
    return attempted


def webhook_deliveries_purge(*, now: datetime | None = None) -> int:
    """Forget delivery records older than KEEP_DELIVERIES."""
    now = now or timezone.now()
    deleted, _ = WebhookDelivery.objects.filter(created_at__lt=now - KEEP_DELIVERIES).exclude(status="pending").delete()
    return deleted


@transaction.atomic
def webhook_delivery_redeliver(*, by: Caller, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send an event again: a new delivery with the same event id and body.

    Audited as `webhook_delivery.redeliver` (CONTRACT.md names no action for it; see the README).
    """
    if delivery.tenant_id != by.tenant_id:
        raise errors.NotFound()
    again = WebhookDelivery.objects.create(
        tenant_id=delivery.tenant_id,
        event_id=delivery.event_id,
        type=delivery.type,
        payload=delivery.payload,
        next_attempt_at=timezone.now(),
    )
    audit_record(
        by=by,
        action="webhook_delivery.redeliver",
        target=again,
        changes={"event_id": str(delivery.event_id), "type": delivery.type, "of_delivery": str(delivery.pk)},
    )
    transaction.on_commit(lambda: _dispatch(again.pk))
    return again


# --- The embedded sender ---------------------------------------------------------------------


class EmbeddedSender:
    """Without a broker: one daemon thread per process sends due deliveries, off the request path."""

    _thread: threading.Thread | None = None
    _wakeup = threading.Event()
    _lock = threading.Lock()
    IDLE_SECONDS = 30.0

    @classmethod
    def wake(cls) -> None:
        with cls._lock:
            if cls._thread is None or not cls._thread.is_alive():
                cls._thread = threading.Thread(target=cls._run, name="webhook-sender", daemon=True)
                cls._thread.start()
        cls._wakeup.set()

    @classmethod
    def _run(cls) -> None:
        from django.db import close_old_connections

        while True:
            cls._wakeup.wait(cls.IDLE_SECONDS)
            cls._wakeup.clear()
            try:
                close_old_connections()
                webhook_deliveries_send_due()
            except Exception:  # the thread must outlive one bad round
                logger.exception("webhook sender round failed")
