"""POST one signed event to a tenant's endpoint, under the AI probe's address rules.

The address policy and the pinned connection are settings_app.probe's (one
place decides which addresses the service may connect to): the URL is parsed
by it, every address the host resolves to is checked by it, and the socket is
opened by it to a checked address only, so DNS rebinding cannot redirect a
delivery. Webhooks add one rule on top: private (non-global) addresses are
refused too, unless the operator sets WEBHOOK_ALLOW_PRIVATE; loopback needs
WEBHOOK_ALLOW_LOOPBACK. Redirects are not followed (a 3xx is a failure).
"""

import hashlib
import hmac
import ipaddress
import logging
import time
from dataclasses import dataclass

from django.conf import settings

from settings_app import probe

logger = logging.getLogger(__name__)

ATTEMPT_DEADLINE_SECONDS = 5.0
USER_AGENT = "Haltless-Webhooks/1.0"
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


def address_refusal(address) -> str | None:
    """Why a webhook must not go to `address`: the probe's rules, then private unless allowed."""
    reason = probe.address_refusal(address, allow_loopback=settings.WEBHOOK_ALLOW_LOOPBACK)
    if reason:
        return reason
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return None
    for reached in _reached_addresses(address):
        # Loopback got past the probe's rule only under WEBHOOK_ALLOW_LOOPBACK.
        if not reached.is_loopback and not reached.is_global:
            return "a private address"
    return None


def _reached_addresses(address) -> list:
    """The address itself and the IPv4 address(es) an IPv6 form carries, as the probe reads them."""
    if not isinstance(address, ipaddress.IPv6Address):
        return [address]
    reached = [address]
    if address in probe._NAT64_SPACE:
        reached += probe.nat64_readings(address)
        # The probe's rule: a 0.0.0.0/8 reading is another layout's zero bits, unless it is the only one.
        meaningful = [a for a in reached[1:] if a not in probe._THIS_NETWORK]
        reached = [address, *(meaningful or reached[1:])]
    elif (inner := probe.embedded_ipv4(address)) is not None:
        reached.append(inner)
    return reached


def validate_webhook_url(url: str) -> str:
    """Check a URL about to be saved: syntax, IP literals and localhost names (no DNS).

    Raises WebhookUrlRefused with a user-facing message.
    """
    try:
        target = probe.parse_url(url)
    except probe.ProbeRefused as exc:
        raise WebhookUrlRefused(str(exc).replace("AI server", "webhook endpoint")) from None
    address = probe.literal_address(target.host)
    if address is None and (target.host.rstrip(".") == "localhost" or target.host.endswith(".localhost")):
        address = ipaddress.ip_address("127.0.0.1")
    if address is not None and address_refusal(address):
        raise WebhookUrlRefused(URL_NOT_ALLOWED)
    return url.strip()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def post_event(url: str, body: bytes, secret: str) -> AttemptOutcome:
    """One attempt: 5 s for everything, 2xx only counts; the signature is made fresh here."""
    deadline = probe._Deadline(ATTEMPT_DEADLINE_SECONDS)
    origin = "?"
    try:
        target = probe.parse_url(url)
        origin = target.origin
        addresses = probe.resolve_checked(target, deadline, allow_loopback=settings.WEBHOOK_ALLOW_LOOPBACK)
        for address in addresses:
            reason = address_refusal(address)
            if reason:
                raise probe.ProbeRefused(reason)
    except probe.ProbeRefused as exc:
        logger.warning("webhook refused: %s", exc)
        return AttemptOutcome(error=ADDRESS_REFUSED, refused=True)
    except (probe.ProbeFailed, probe._DeadlinePassed, OSError) as exc:
        logger.warning("webhook lookup failed for %s: %r", origin, exc)
        return AttemptOutcome(error=CONNECT_FAILED)
    try:
        sock = probe._open(target, addresses, deadline)
    except (probe.ProbeFailed, probe._DeadlinePassed, OSError) as exc:
        logger.warning("webhook connect failed for %s: %r", target.origin, exc)
        return AttemptOutcome(error=CONNECT_FAILED)
    if target.scheme == "https":
        conn = probe._PinnedHTTPSConnection(target, sock, deadline)
    else:
        conn = probe._PinnedHTTPConnection(target, sock)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Connection": "close",
        SIGNATURE_HEADER: sign(secret, body, int(time.time())),
    }
    try:
        conn.request("POST", target.base_path or "/", body=body, headers=headers)
        response = conn.getresponse()
        response.read(64 * 1024)  # drain a little; the answer's body is of no interest
        status = response.status
    except (probe._DeadlinePassed, OSError, Exception) as exc:  # http.client raises its own kinds too
        logger.warning("webhook to %s failed: %r", target.origin, exc)
        return AttemptOutcome(error=CONNECT_FAILED)
    finally:
        conn.close()
        sock.close()
    if 200 <= status < 300:
        return AttemptOutcome(status_code=status)
    return AttemptOutcome(status_code=status, error=f"The endpoint answered HTTP {status}.")
