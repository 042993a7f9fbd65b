"""The app's URLs plus two baseline views, for bench_hotpaths' ceilings on the same gunicorn.

- `/_bench/trivial`: a plain Django JSON view, no database: what Django, its
  middleware and gunicorn cost per request.
- `/_bench/select-insert`: the least a heartbeat can do, by hand: one indexed
  SELECT of the key by its prefix (and the digest compare), one INSERT of a
  heartbeat row, on the same persistent connection, durable commit.
- `/_bench/select-insert-async`: the same, with the heartbeat's own asynchronous
  commit (the INSERT in one statement with `set_config('synchronous_commit',
  'off', true)`, as telemetry.services does): the same work as a heartbeat,
  done the fastest way, so that the heartbeat's commit mode is not what the
  ratio against it measures.
"""

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.urls import path

from apikeys import keys
from haltless.urls import handler400, handler404, handler500  # noqa: F401
from haltless.urls import urlpatterns as app_urlpatterns


def trivial(request):
    return JsonResponse({"status": "ok"})


_INSERT = (
    "INSERT INTO telemetry_agentheartbeat (tenant_id, api_key_id, received_at, agent_version, hostname) "
    "VALUES (%s, %s, now(), '', '')"
)
_INSERT_ASYNC = (
    "WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "INSERT INTO telemetry_agentheartbeat (tenant_id, api_key_id, received_at, agent_version, hostname) "
    "SELECT %s, %s, now(), '', '' FROM async_commit"
)


def select_insert(request, *, insert: str = _INSERT):
    secret = request.headers.get("Authorization", "").removeprefix("Bearer ")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, tenant_id, key_digest FROM apikeys_apikey WHERE prefix = %s", [keys.display_prefix(secret)]
        )
        row = cursor.fetchone()
        if row is None or not keys.matches(secret, row[2]):
            return HttpResponse(status=401)
        cursor.execute(insert, [row[1], row[0]])
    return JsonResponse({"status": "ok", "tenant_id": str(row[1]), "key_id": str(row[0])})


urlpatterns = [
    path("_bench/trivial", trivial),
    path("_bench/select-insert", select_insert),
    path("_bench/select-insert-async", select_insert, {"insert": _INSERT_ASYNC}),
    *app_urlpatterns,
]
