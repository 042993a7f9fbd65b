"""The app's URLs plus two baseline views, for bench_hotpaths' ceilings on the same gunicorn.

- `/_bench/trivial`: a plain Django JSON view, no database: what Django, its
  middleware and gunicorn cost per request.
- `/_bench/select-insert`: the least a heartbeat can do, by hand: one indexed
  SELECT of the key by its prefix (and the digest compare), one INSERT of a
  heartbeat row, on the same persistent connection, durable commit.
"""

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.urls import path

from apikeys import keys
from haltless.urls import handler400, handler404, handler500  # noqa: F401
from haltless.urls import urlpatterns as app_urlpatterns


def trivial(request):
    return JsonResponse({"status": "ok"})


def select_insert(request):
    secret = request.headers.get("Authorization", "").removeprefix("Bearer ")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, tenant_id, key_digest FROM apikeys_apikey WHERE prefix = %s", [keys.display_prefix(secret)]
        )
        row = cursor.fetchone()
        if row is None or not keys.matches(secret, row[2]):
            return HttpResponse(status=401)
        cursor.execute(
            "INSERT INTO telemetry_agentheartbeat (tenant_id, api_key_id, received_at, agent_version, hostname) "
            "VALUES (%s, %s, now(), '', '')",
            [row[1], row[0]],
        )
    return JsonResponse({"status": "ok", "tenant_id": str(row[1]), "key_id": str(row[0])})


urlpatterns = [
    path("_bench/trivial", trivial),
    path("_bench/select-insert", select_insert),
    *app_urlpatterns,
]
