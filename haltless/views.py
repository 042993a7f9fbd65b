"""Site-level pages: the landing page and the load balancer's health check."""

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from haltless.celery import app as celery_app

logger = logging.getLogger(__name__)


@require_GET
def landing(request):
    return render(request, "landing.html")


@never_cache
@require_GET
def healthz(request):
    checks = {"database": _database_ok()}
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        checks["broker"] = _broker_ok()
    healthy = all(checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": {k: "ok" if v else "down" for k, v in checks.items()}},
        status=200 if healthy else 503,
    )


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        logger.exception("health check: database unreachable")
        return False


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        logger.warning("health check: broker unreachable")
        return False
