from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class OptionalTrailingSlashMiddleware:
    """Serve `/api/v1/things/` exactly like `/api/v1/things`, without a redirect.

    URL patterns are declared once, without the slash, as the documentation
    writes them; clients that add one are not punished with a 301 that drops
    their POST body.
    """

    prefixes = ("/api/v1/", "/healthz/")

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
