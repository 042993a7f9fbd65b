from django.http import HttpRequest, HttpResponse


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
