import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.views import exception_handler

from core import errors, metrics

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class BadGateway(exceptions.APIException):
    status_code = 502
    default_detail = "The upstream server did not give a usable answer."
    default_code = "bad_gateway"


class ServiceUnavailable(exceptions.APIException):
    """A dependency the request needs is down (the broker, …): 503 with Retry-After, nothing changed."""

    status_code = 503
    default_detail = "The service cannot do this right now; try again shortly."
    default_code = "service_unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 30):
        super().__init__(detail)
        # DRF's handler turns `wait` into the Retry-After header.
        self.wait = retry_after


_DOMAIN_TO_HTTP: dict[type[errors.DomainError], type[exceptions.APIException]] = {
    errors.NotFound: exceptions.NotFound,
    errors.Conflict: Conflict,
    errors.RuleViolation: exceptions.ValidationError,
    errors.Refused: exceptions.PermissionDenied,
    errors.UpstreamFailed: BadGateway,
}


def http_error_of(exc: errors.DomainError) -> exceptions.APIException:
    """The HTTP answer of a domain error: the one place a service's error gets a status."""
    if isinstance(exc, errors.Unavailable):
        return ServiceUnavailable(exc.message, retry_after=exc.retry_after)
    if isinstance(exc, errors.Throttled):
        throttled = exceptions.Throttled(wait=exc.retry_after, detail=exc.message)
        throttled.metrics_limit = exc.limit
        return throttled
    for kind in type(exc).__mro__:
        if kind in _DOMAIN_TO_HTTP:
            message = exc.message
            if kind is errors.RuleViolation and isinstance(message, str):
                message = {"detail": message}
            return _DOMAIN_TO_HTTP[kind](message)
    return exceptions.APIException(exc.message)


def api_exception_handler(exc, context):
    """DRF's handler, with the domain's errors and Django's own mapped to their DRF shapes.

    Anything it does not know is left to Django's handler500 (see
    core.views.server_error), which answers JSON without a traceback.
    """
    if isinstance(exc, errors.DomainError):
        exc = http_error_of(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, DjangoValidationError):
        # Services validate with Django's ValidationError; a view that lets one
        # through still answers 400 in DRF's shape, never 500.
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": " ".join(exc.messages)}
        exc = exceptions.ValidationError(detail)
    if getattr(exc, "metrics_auth_failure", None):
        # A refusal of a credential that its own exception names (e.g. an enrollment token).
        metrics.api_key_auth_failed(reason=exc.metrics_auth_failure)
    if isinstance(exc, exceptions.APIException) and exc.status_code == 429:
        # Every 429 of the API passes here once: a limit that names itself (metrics_limit), else a DRF throttle.
        metrics.rate_limited(limit=getattr(exc, "metrics_limit", None) or "throttle")
    return exception_handler(exc, context)
