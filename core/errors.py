"""The domain's errors: raised by services, which know nothing of HTTP.

`core.exceptions.api_exception_handler` maps each kind to its status once, and
`core.openapi` documents each status's body once. A service raises the kind that
says what went wrong; the message is the one the caller reads:

    raise errors.NotFound("No such API key.")
    raise errors.RuleViolation({"scopes": ["Unknown scope: admin:all"]})
    raise errors.Unavailable("The broker is down.", retry_after=30)

Django's own `ValidationError` (field rules, model validation) and `PermissionDenied`
are domain errors too: services and validators raise them, the handler maps them.
"""

from typing import Any


class DomainError(Exception):
    """Something the caller asked for cannot be done; `message` says what, in the caller's words."""

    default_message = "The request cannot be done."

    def __init__(self, message: str | dict[str, Any] | None = None):
        self.message = message if message is not None else self.default_message
        super().__init__(self.message)


class NotFound(DomainError):
    """The thing does not exist, or the caller may not know it does (another tenant's): 404."""

    default_message = "Not found."


class Conflict(DomainError):
    """The thing's current state does not allow this (already revoked, busy, a duplicate): 409."""

    default_message = "The request conflicts with the current state."


class RuleViolation(DomainError):
    """The input breaks a rule: 400, with `{"field": ["message"]}` or a single message."""

    default_message = "Invalid input."


class Refused(DomainError):
    """The caller may not do this (role, scope, address): 403."""

    default_message = "You do not have permission to perform this action."


class UpstreamFailed(DomainError):
    """A server the request depends on (an AI provider, …) gave no usable answer: 502."""

    default_message = "The upstream server did not give a usable answer."


class Unavailable(DomainError):
    """A dependency is down (the broker, …); nothing was changed: 503 with Retry-After."""

    default_message = "The service cannot do this right now; try again shortly."

    def __init__(self, message: str | None = None, *, retry_after: int = 30):
        super().__init__(message)
        self.retry_after = retry_after


class Throttled(DomainError):
    """Too many attempts: 429 with Retry-After. `limit` names the limit for the metrics."""

    default_message = "Request was throttled."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None, limit: str = "throttle"):
        super().__init__(message)
        self.retry_after = retry_after
        self.limit = limit
