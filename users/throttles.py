"""Login and current-password throttles: the one module every login path uses.

The API login (`/auth/token`), the Django admin's login form and the
current-password checks (profile email change, change-password) all go
through here, on database counters (`core.throttling`), so they share one
budget per account and per client address, cannot be raced (the attempt is
counted before the password is checked), cannot be evicted by a flood, and
keep working when Redis is down.

Usage, for any login form (`by` is `core.caller.caller_of(request)`: its address counts)::

    attempt = login_attempt_begin(email=email, by=by)  # raises LoginThrottled
    user = authenticate(request, email=email, password=password)
    if user is not None:
        login_attempt_succeeded(attempt)   # a correct login does not use up the budget

A wrong password needs no call: it was counted by `login_attempt_begin`.
`login_attempt_check` only reads (for a form that wants to show the lockout
before asking). Limits: `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` `login_ip`
and `login_account` (defaults 30/min and 10/min); current password 10/hour
per user, fixed (a security floor, not a tuning knob).
"""

import time
from dataclasses import dataclass

from django.conf import settings

from core import errors
from core.caller import Caller
from core.models import ThrottleCounter
from core.throttling import Rate, ThrottleHit, throttle_hit, throttle_hits, throttle_key, throttle_release
from users.models import normalize_email

CURRENT_PASSWORD_RATE = Rate(limit=10, period=3600)


class LoginThrottled(errors.Throttled):
    """Too many failed attempts: 429 with Retry-After, `wait_seconds` until the next one is accepted."""

    def __init__(self, wait_seconds: int):
        super().__init__(retry_after=wait_seconds)

    @property
    def wait_seconds(self) -> int:
        return self.retry_after


@dataclass(frozen=True)
class LoginAttempt:
    """The counted hits of one attempt, to give back if it succeeds."""

    hits: tuple[ThrottleHit, ...]


def _rate(scope: str) -> Rate:
    return Rate.parse(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope])


def _login_keys(*, email: str | None, ip: str | None) -> list[tuple[str, Rate]]:
    keys = [(throttle_key(scope="login_ip", ident=ip or "unknown"), _rate("login_ip"))]
    if isinstance(email, str) and email.strip():
        keys.append((throttle_key(scope="login_account", ident=normalize_email(email)), _rate("login_account")))
    return keys


def login_attempt_begin(*, email: str | None, by: Caller) -> LoginAttempt:
    """Count a login attempt for `by`'s address and the account, before its password is checked.

    Raises LoginThrottled when either is over its limit (the attempt must then
    not check the password at all).
    """
    hits = tuple(throttle_hits(keys=_login_keys(email=email, ip=by.client_ip)))
    refused = [hit for hit in hits if not hit.allowed]
    if refused:
        # A refused attempt checks no password, so it costs nothing; the windows stay where they are.
        throttle_release(*hits)
        raise LoginThrottled(max(hit.wait_seconds for hit in refused))
    return LoginAttempt(hits=hits)


def login_attempt_succeeded(attempt: LoginAttempt) -> None:
    """The password was right (or never checked): give the attempt back."""
    throttle_release(*attempt.hits)


def login_attempt_check(*, email: str | None, by: Caller) -> int | None:
    """Seconds of lockout left for `by`'s address or this account, or None: reads only, counts nothing."""
    now = time.time()
    waits = []
    for key, rate in _login_keys(email=email, ip=by.client_ip):
        counter = ThrottleCounter.objects.filter(key=key, window_ends_at__gt=now).first()
        if counter is not None and counter.count >= rate.limit:
            waits.append(max(1, int(counter.window_ends_at - now + 0.999)))
    return max(waits) if waits else None


def current_password_attempt_begin(*, user_id) -> ThrottleHit:
    """Count a current-password check of this user before it is made; raises LoginThrottled."""
    hit = throttle_hit(key=throttle_key(scope="current_password", ident=str(user_id)), rate=CURRENT_PASSWORD_RATE)
    if not hit.allowed:
        throttle_release(hit)
        raise LoginThrottled(hit.wait_seconds)
    return hit


def current_password_attempt_succeeded(hit: ThrottleHit) -> None:
    """The current password was right (or never checked): give the hit back."""
    throttle_release(hit)
