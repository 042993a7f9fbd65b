import logging
import random
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.utils.functional import SimpleLazyObject, empty

from core import metrics
from core.logging import request_id_var, valid_request_id

request_logger = logging.getLogger("haltless.request")
logger = logging.getLogger(__name__)


class OptionalTrailingSlashMiddleware:
    """Serve `/api/v1/things/` exactly like `/api/v1/things`, without a redirect.

    URL patterns are declared once, without the slash, as the documentation
    writes them; clients that add one are not punished with a 301 that drops
    their POST body.
    """

    prefixes = ("/api/v1/", "/healthz/", "/readyz/", "/metrics/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if len(path) > 1 and path.endswith("/") and path.startswith(self.prefixes):
            request.path_info = path.rstrip("/") or "/"
        return self.get_response(request)


class RequestBodyLimitMiddleware:
    """Refuse an API request whose body is over DATA_UPLOAD_MAX_MEMORY_SIZE: 413, body unread.

    Django's limit guards only `request.body`; DRF's parsers read the stream
    whatever its size, so without this one request could make a worker hold
    any amount of memory. Endpoints that need a tighter limit (ingest) set it
    in their own parser.
    """

    prefixes = ("/api/",)

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and request.path_info.startswith(self.prefixes):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0  # Django reads no body for a malformed length either
            if length > limit:
                return JsonResponse({"detail": f"The request body is larger than {limit} bytes."}, status=413)
        return self.get_response(request)


class ResponseHeadersMiddleware:
    """Adds the headers a request collected on its way (`request.extra_response_headers`) to its answer.

    Whatever answers (the view, an error handler, a 429 from authentication),
    headers such as an API key's RateLimit-* fields reach the client; core
    needs to know nothing about who set them.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        extra = getattr(request, "extra_response_headers", None)
        if extra:
            for name, value in extra.items():
                response[name] = value
        return response


class RequestObservabilityMiddleware:
    """Request id, the request's metrics and its one log line; first in MIDDLEWARE, so it times everything.

    `X-Request-ID` is taken from the request when it is at most 128 visible
    ASCII characters, else made; it is returned, put on every log record of the
    request (core.logging) and carried into the Celery tasks it sends
    (haltless.celery). Metrics are labelled by the resolver's route template,
    never the raw path, so a scan of random URLs adds one "unmatched" series.
    Kept cheap: it reads what authentication already put on the request and
    never evaluates a lazy session user. A made id comes from `random` (no system
    call; reseeded in every forked worker), as it must be unique, not secret.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        given = request.META.get("HTTP_X_REQUEST_ID")
        request_id = given if given is not None and valid_request_id(given) else f"{random.getrandbits(128):032x}"
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            seconds = time.perf_counter() - started
            route = _route_of(request)
            method, status = request.method, response.status_code
            metrics.http_request_observe(route=route, method=method, status=status, seconds=seconds)
            if request_logger.isEnabledFor(logging.INFO):
                caller, tenant, key_prefix = _caller_of(request)
                milliseconds = round(seconds * 1000, 3)
                request_logger.info(
                    "%s %s %s %.1fms",
                    method,
                    route,
                    status,
                    milliseconds,
                    extra={
                        "request_id": request_id,  # what the filter would read back from the context
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": milliseconds,
                        "tenant": tenant,
                        "caller": caller,
                        "key_prefix": key_prefix,
                    },
                )
            return response
        finally:
            request_id_var.reset(token)


UNMATCHED_ROUTE = "unmatched"


def _route_of(request: HttpRequest) -> str:
    match = request.resolver_match
    if match is None:
        # Answered before URL resolution (a 413, a redirect to HTTPS): resolve it now.
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED_ROUTE
    return "/" + match.route if match.route else "/"


def _caller_of(request: HttpRequest) -> tuple[str, str | None, str | None]:
    """(caller type, tenant id, API key prefix) from what authentication set, never forcing a lookup."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = user._wrapped if user._wrapped is not empty else None
    if user is None or not getattr(user, "is_authenticated", False):
        return "anonymous", None, None
    tenant_id = getattr(user, "tenant_id", None)
    tenant = str(tenant_id) if tenant_id is not None else None
    if getattr(user, "is_api_key", False):
        api_key = getattr(user, "api_key", None)
        return "api_key", tenant, getattr(api_key, "prefix", None)
    return "user", tenant, None


class ApiJsonErrorsMiddleware:
    """Every error answer under /api/ is JSON in DRF's shape, whatever the settings module.

    Django answers an unmatched path or an uncaught exception with its HTML debug
    pages when DEBUG is on (the local settings): 11 KB listing the URL patterns,
    which a generated client cannot parse. Second in MIDDLEWARE, right after the
    request-observability middleware, so it also sees what the others answer.
    """

    prefixes = ("/api/",)
    details = {404: "Not found.", 500: "Internal server error."}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code >= 400 and request.path_info.startswith(self.prefixes):
            content_type = response.get("Content-Type", "")
            if not content_type.startswith("application/json"):
                detail = self.details.get(response.status_code) or f"{response.reason_phrase}."
                json_response = JsonResponse({"detail": detail}, status=response.status_code)
                for header, value in response.items():
                    if header.lower() not in ("content-type", "content-length"):
                        json_response[header] = value
                return json_response
        return response
        return response


DATABASE_UNAVAILABLE = "The service cannot reach its database right now; try again shortly."
DATABASE_RETRY_AFTER_SECONDS = 5


class DatabaseUnavailableMiddleware:
    """The database unreachable, restarting, or a connection dropped mid-request: 503 JSON
    with Retry-After, not a 500. Nothing half-done stays behind, because every write is
    one statement or one transaction; the connection is replaced at the next request
    (CONN_HEALTH_CHECKS). Logged as one warning line, without a traceback."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from django.db import InterfaceError, OperationalError, connection

        # Django's wrapped errors, and the driver's own where code talks to it directly
        # (psycopg's COPY in telemetry's ingest).
        driver = connection.Database
        unavailable = (OperationalError, InterfaceError, driver.OperationalError, driver.InterfaceError)
        if not isinstance(exception, unavailable):
            return None
        logger.warning(
            "database unavailable during %s %s: %s: %s",
            request.method,
            request.path,
            type(exception).__name__,
            str(exception).strip().splitlines()[0] if str(exception).strip() else "",
        )
        response = JsonResponse({"detail": DATABASE_UNAVAILABLE}, status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
