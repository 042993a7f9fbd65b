"""JSON error handlers for Django-level errors (a 404 outside DRF, any 500)."""

from django.http import JsonResponse


def not_found(request, exception=None):
    return JsonResponse({"detail": "Not found."}, status=404)


def server_error(request):
    # Never a traceback: the exception is logged by Django's request logger.
    return JsonResponse({"detail": "Internal server error."}, status=500)
