"""Site-level pages: the landing page, liveness, readiness and the Prometheus scrape."""

import hmac
import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core import metrics
from core.views import not_found
from haltless.celery import app as celery_app

logger = logging.getLogger(__name__)

# Seconds a readiness probe waits for the broker before calling it down.
BROKER_TIMEOUT_SECONDS = 1.0


@require_GET
def landing(request):
    return render(request, "landing.html")


@never_cache
@require_GET
def healthz(request):
    """Liveness: the process can answer. It touches nothing (no database, no broker)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    """Readiness: 503 without a usable, migrated database; a down broker or cache is only degraded."""
    checks = {"database": "ok" if _database_ok() else "down"}
    if checks["database"] == "ok":
        checks["migrations"] = "ok" if _migrations_applied() else "pending"
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        checks["broker"] = "ok" if _broker_ok() else "down"
    if settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
        checks["cache"] = "ok" if _cache_ok() else "down"
    if checks["database"] != "ok" or checks.get("migrations") != "ok":
        state, status = "unavailable", 503
    elif all(value == "ok" for value in checks.values()):
        state, status = "ok", 200
    else:
        state, status = "degraded", 200
    return JsonResponse({"status": state, "checks": checks}, status=status)


@never_cache
@require_GET
def prometheus_metrics(request):
    """Prometheus text format, for the operator's scraper only: anyone else gets the site's 404."""
    expected = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    scheme, _, token = given.partition(" ")
    if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        return not_found(request)
    return HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        logger.warning("readiness: database unreachable", exc_info=True)
        return False


_migrations_known_applied = False


def _migrations_applied() -> bool:
    """Whether every migration is applied. Once true it stays true for this process (code cannot change)."""
    global _migrations_known_applied
    if _migrations_known_applied:
        return True
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        logger.warning("readiness: cannot read the applied migrations", exc_info=True)
        return False
    _migrations_known_applied = not pending
    return _migrations_known_applied


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
        return True
    except Exception:  # any transport's failure means the same: not reachable now
        logger.warning("readiness: broker unreachable")
        return False


def _cache_ok() -> bool:
    from django.core.cache import cache

    try:
        return bool(cache._cache.get_client().ping())  # the Redis client, without touching a key
    except Exception:
        logger.warning("readiness: cache (Redis) unreachable")
        return False
