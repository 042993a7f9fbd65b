"""POST one signed event to a tenant's endpoint, through core.guarded_fetch.

The address policy and the pinned connection are core.guarded_fetch's (one
place decides which addresses the service may connect to, the AI probe's
too): the URL is parsed by it, every address the host resolves to is checked
by it, and the socket is opened by it to a checked address only, so DNS
rebinding cannot redirect a delivery. Webhooks are stricter than the probe:
private (non-global) addresses are refused too, unless the operator sets
WEBHOOK_ALLOW_PRIVATE; loopback needs WEBHOOK_ALLOW_LOOPBACK. Redirects are
not followed (a 3xx is a failure).
"""

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass

from django.conf import settings

from core import guarded_fetch

logger = logging.getLogger(__name__)

ATTEMPT_DEADLINE_SECONDS = 5.0
USER_AGENT = "Haltless-Webhooks/1.0"
PEER = "webhook endpoint"  # how the guarded fetch's messages name the other end
SIGNATURE_HEADER = "X-Haltless-Signature"
# The one text for every failure to reach the endpoint (the reason is logged server-side).
CONNECT_FAILED = "Could not connect to the webhook endpoint."
ADDRESS_REFUSED = "The webhook URL's address is not allowed."
URL_NOT_ALLOWED = "This address is not allowed for a webhook."


class WebhookUrlRefused(Exception):
    """The URL or one of its addresses is not allowed: never connected to, never retried."""


@dataclass(frozen=True)
class AttemptOutcome:
    status_code: int | None = None
    error: str = ""
    refused: bool = False

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def policy() -> guarded_fetch.Policy:
    """The webhooks' address policy, from the operator's settings (read at each use)."""
    return guarded_fetch.Policy(
        peer=PEER, allow_loopback=settings.WEBHOOK_ALLOW_LOOPBACK, allow_private=settings.WEBHOOK_ALLOW_PRIVATE
    )


def validate_webhook_url(url: str) -> str:
    """Check a URL about to be saved: syntax, IP literals and localhost names (no DNS).

    Raises WebhookUrlRefused with a user-facing message.
    """
    try:
        return guarded_fetch.check_saved_url(url, policy=policy())
    except guarded_fetch.AddressRefused:
        raise WebhookUrlRefused(URL_NOT_ALLOWED) from None
    except guarded_fetch.UrlRefused as exc:
        raise WebhookUrlRefused(str(exc)) from None


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def post_event(url: str, body: bytes, secret: str) -> AttemptOutcome:
    """One attempt: 5 s for everything, 2xx only counts; the signature is made fresh here."""
    deadline = guarded_fetch.Deadline(ATTEMPT_DEADLINE_SECONDS)
    origin = "?"
    try:
        target = guarded_fetch.parse_url(url, peer=PEER)
        origin = target.origin
        addresses = guarded_fetch.resolve_checked(target, deadline, policy=policy())
    except guarded_fetch.UrlRefused as exc:
        logger.warning("webhook refused: %s", exc)
        return AttemptOutcome(error=ADDRESS_REFUSED, refused=True)
    except (guarded_fetch.FetchFailed, guarded_fetch.DeadlinePassed, OSError) as exc:
        logger.warning("webhook lookup failed for %s: %r", origin, exc)
        return AttemptOutcome(error=CONNECT_FAILED)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Connection": "close",
        SIGNATURE_HEADER: sign(secret, body, int(time.time())),
    }
    try:
        with guarded_fetch.pinned_connection(target, addresses, deadline, peer=PEER) as conn:
            conn.request("POST", target.base_path or "/", body=body, headers=headers)
            response = conn.getresponse()
            response.read(64 * 1024)  # drain a little; the answer's body is of no interest
            status = response.status
    except Exception as exc:  # connect, TLS, the deadline, and http.client's own kinds
        logger.warning("webhook to %s failed: %r", target.origin, exc)
        return AttemptOutcome(error=CONNECT_FAILED)
    if 200 <= status < 300:
        return AttemptOutcome(status_code=status)
    return AttemptOutcome(status_code=status, error=f"The endpoint answered HTTP {status}.")
