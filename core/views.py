"""JSON error handlers for Django-level errors (a 404 outside DRF, any 500)."""

from django.http import JsonResponse
from django.views import defaults
from drf_spectacular.views import SpectacularSwaggerView


def not_found(request, exception=None):
    return JsonResponse({"detail": "Not found."}, status=404)


def server_error(request):
    # Never a traceback: the exception is logged by Django's request logger.
    return JsonResponse({"detail": "Internal server error."}, status=500)


def bad_request(request, exception=None):
    """Django's own refusals (too many query parameters, a bad Host) in the API's error shape."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


class ApiDocsView(SpectacularSwaggerView):
    """Swagger UI, for GET and HEAD: its HTML renderer has no template for DRF's OPTIONS answer."""

    http_method_names = ["get", "head"]
