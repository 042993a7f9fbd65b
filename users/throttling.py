"""Throttle failed logins only, per client address and per account.

DRF's rate throttles count every request; a user who logs in correctly should
not use up the budget, so these check the history on each request and record
an entry only when the credentials were wrong.
"""

import hashlib

from rest_framework.throttling import SimpleRateThrottle

from core.http import client_ip
from users.models import normalize_email


class FailedLoginThrottle(SimpleRateThrottle):
    def get_ident(self, request) -> str:
        # DRF's own get_ident believes any X-Forwarded-For; the one client address function does not.
        return client_ip(request) or "unknown"

    def allow_request(self, request, view) -> bool:
        self.key = self.get_cache_key(request, view)
        if self.rate is None or self.key is None:
            return True
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return True

    def record_failure(self) -> None:
        if self.key is None:
            return
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)


class LoginAddressThrottle(FailedLoginThrottle):
    scope = "login_ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginAccountThrottle(FailedLoginThrottle):
    scope = "login_account"

    def get_cache_key(self, request, view):
        email = request.data.get("email") if isinstance(request.data, dict) else None
        if not isinstance(email, str) or not email.strip():
            return None
        return self.cache_format % {
            "scope": self.scope,
            # surrogatepass: a lone surrogate in a hostile body must not become a 500.
            "ident": hashlib.sha256(normalize_email(email).encode("utf-8", "surrogatepass")).hexdigest(),
        }


class CurrentPasswordThrottle(FailedLoginThrottle):
    """Wrong `current_password` answers, per user: a stolen access token must not
    become a way to guess the password. The rate is fixed here, not configured,
    because it is a security floor rather than a tuning knob."""

    scope = "current_password"
    rate = "10/hour"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
