"""What an API key costs: per request against a JWT, per verification against PBKDF2.

1. The same trivial endpoint (it declares `read:machines`, so both a key and a
   user may call it, and it makes no query of its own) through Django's full
   request stack (test client, every middleware, DRF), authenticated by API
   key and by JWT, in interleaved rounds. Target: key <= 1.0 x JWT (issues 14 and 16).
2. The queries each request makes (the endpoint makes none, so they are
   authentication's). Target: one.
3. One key verification (format and checksum, SHA-256, constant-time compare)
   against one PBKDF2 verification at Django's default iterations, what
   password-hasher-based key libraries paid per request. Target: >= 1000x cheaper.
4. A heartbeat (GET /agent/heartbeat, a real view that writes a row) by a key
   with a machine scope, a 50-network allowlist and a rate limit set, against
   the same heartbeat by a key without them, interleaved, both counted by the
   rate limiter on Redis (BENCH_REDIS_URL, default db 14; in-process when it does
   not answer). Target: <= 1.15x. And the restricted key's queries on the
   trivial endpoint: still one (authentication).

5. After a rotation (issue 16): the same trivial endpoint by the rotated key's
   current secret and by its previous secret (within the overlap), against
   JWT, interleaved. Target: each <= 1.0x JWT, and one query whichever secret.

This module is also the URLconf of the trivial endpoint (ROOT_URLCONF is
pointed at it for the request figures).
"""

import statistics
import time

from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.harness import Context, Measurement, best_of

TITLE = "API keys: request cost against JWT, verification cost against PBKDF2"
TRIVIAL_PATH = "/api/v1/_bench/trivial"


class TrivialView(APIView):
    """Returns who called; no query beyond authentication."""

    required_scope = "read:machines"

    def get(self, request):
        return Response({"tenant_id": str(request.user.tenant_id)})


urlpatterns = [path(TRIVIAL_PATH.lstrip("/"), TrivialView.as_view())]


def _per_request_seconds(client: Client, header: str, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        response = client.get(TRIVIAL_PATH, HTTP_AUTHORIZATION=header)
        if response.status_code != 200:
            raise RuntimeError(f"trivial endpoint answered {response.status_code}: {response.content[:200]!r}")
    return (time.perf_counter() - start) / count


def _request_figures(ctx: Context, key_header: str, jwt_header: str) -> list[Measurement]:
    from django.db import connection

    client = Client(HTTP_HOST="127.0.0.1")  # an allowed host; "testserver" is only allowed under pytest
    rounds, per_round = ctx.scale(21, 5), ctx.scale(100, 40)
    for header in (key_header, jwt_header):  # warm up: imports, connection, the key's last_used_at write
        _per_request_seconds(client, header, 50)
    key_times, jwt_times = [], []
    for index in range(rounds):
        # Alternate which goes first, so drift (CPU clocks, autovacuum) hits both alike.
        order = [(key_times, key_header), (jwt_times, jwt_header)]
        for times, header in order if index % 2 == 0 else reversed(order):
            times.append(_per_request_seconds(client, header, per_round))
    key_us, jwt_us = statistics.median(key_times) * 1e6, statistics.median(jwt_times) * 1e6

    queries = {}
    for label, header in (("key", key_header), ("jwt", jwt_header)):
        with CaptureQueriesContext(connection) as captured:
            client.get(TRIVIAL_PATH, HTTP_AUTHORIZATION=header)
        queries[label] = len(captured.captured_queries)
    ratio = key_us / jwt_us
    ctx.notes.append(
        f"API key vs JWT: median of {rounds} interleaved rounds of {per_round} requests each through "
        f"django.test.Client on PostgreSQL, to a view that makes no query ({TRIVIAL_PATH})."
    )
    return [
        Measurement(
            "request authenticated by API key",
            key_us,
            "µs",
            baseline="same request by JWT",
            baseline_value=jwt_us,
            target="<= 1.0x",
            ok=ratio <= 1.0,
        ),
        Measurement(
            "queries per API-key request (view makes none)",
            queries["key"],
            "queries",
            baseline="same request by JWT",
            baseline_value=queries["jwt"],
            target="<= 1",
            ok=queries["key"] <= 1,
        ),
    ]


def _verification_figures(ctx: Context, secret: str, stored_digest: str) -> list[Measurement]:
    from apikeys import keys

    def verify_key() -> bool:
        return keys.is_well_formed(secret) and keys.matches(secret, stored_digest)

    assert verify_key()
    key_seconds = best_of(verify_key, repeat=5, number=ctx.scale(20_000, 2_000))

    hasher = PBKDF2PasswordHasher()
    encoded = hasher.encode(secret, hasher.salt())  # Django's default iterations
    assert hasher.verify(secret, encoded)
    pbkdf2_seconds = best_of(lambda: hasher.verify(secret, encoded), repeat=ctx.scale(3, 1), number=1)
    speedup = pbkdf2_seconds / key_seconds
    ctx.notes.append(
        f"Key verification = format and CRC32 checksum + SHA-256 + hmac.compare_digest; PBKDF2 = "
        f"django PBKDF2PasswordHasher.verify at {hasher.iterations:,} iterations (best of runs)."
    )
    return [
        Measurement(
            f"PBKDF2-SHA256 verification ({hasher.iterations:,} iterations)",
            pbkdf2_seconds * 1e6,
            "µs",
            baseline="one API-key verification",
            baseline_value=key_seconds * 1e6,
            target=">= 1000x (key cheaper)",
            ok=speedup >= 1000,
        ),
        Measurement("one API-key verification", key_seconds * 1e6, "µs"),
    ]


def _restricted_figures(ctx: Context) -> list[Measurement]:
    import os

    import redis
    from django.db import connection

    from apikeys import redis_store
    from apikeys.models import ApiKey
    from apikeys.services import api_key_create
    from core.caller import Caller
    from telemetry.models import Machine
    from tenants.models import Tenant

    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    try:
        redis.Redis.from_url(redis_url, socket_timeout=1).ping()
        where = f"Redis ({redis_url})"
    except redis.RedisError:
        redis_url, where = "", "the in-process counter (no Redis answered)"
    # Enterprise: the tier caps (60,000 a minute, per key and for the tenant) stay above what the bench sends.
    tenant = Tenant.objects.create(name="Bench Floor", tier="enterprise")
    machine = Machine.objects.create(tenant=tenant, external_id="line3-press", name="Line 3 press")
    plain = api_key_create(by=Caller.system(tenant_id=tenant.id), name="plain", scopes_requested="edge_agent")
    restricted = api_key_create(
        by=Caller.system(tenant_id=tenant.id), name="restricted", scopes_requested=["edge_agent", "read_only"]
    )
    # The client's network last of 50, so the allowlist check walks them all.
    cidrs = [f"10.{n}.0.0/16" for n in range(49)] + ["127.0.0.0/8"]
    ApiKey.objects.filter(pk=restricted.api_key.pk).update(
        machine_ids=[str(machine.pk)], allowed_cidrs=cidrs, requests_per_minute=60_000, readings_per_minute=1_000_000
    )
    headers = {"plain": f"Bearer {plain.secret}", "restricted": f"Bearer {restricted.secret}"}
    client = Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR="127.0.0.1")
    path = "/api/v1/agent/heartbeat"

    def per_request(header: str, count: int) -> float:
        start = time.perf_counter()
        for _ in range(count):
            response = client.get(path, HTTP_AUTHORIZATION=header)
            if response.status_code != 200:
                raise RuntimeError(f"heartbeat answered {response.status_code}: {response.content[:200]!r}")
        return (time.perf_counter() - start) / count

    with override_settings(HALTLESS_REDIS_URL=redis_url):
        redis_store.reset()
        rounds, per_round = ctx.scale(21, 5), ctx.scale(100, 40)
        for header in headers.values():
            per_request(header, 50)
        times: dict[str, list[float]] = {"plain": [], "restricted": []}
        for index in range(rounds):
            order = list(headers.items()) if index % 2 == 0 else list(reversed(headers.items()))
            for label, header in order:
                times[label].append(per_request(header, per_round))
        with override_settings(ROOT_URLCONF=__name__), CaptureQueriesContext(connection) as captured:
            response = client.get(TRIVIAL_PATH, HTTP_AUTHORIZATION=headers["restricted"])
        assert response.status_code == 200 and "RateLimit-Limit" in response, response.content
        redis_store.reset()
    plain_us, restricted_us = (statistics.median(times[label]) * 1e6 for label in ("plain", "restricted"))
    ctx.notes.append(
        f"Restricted key heartbeat: machine scope, 50-network allowlist (the client's last), a rate limit set "
        f"(RateLimit-* headers on every answer) against a key without them; both counted by {where}; median of "
        f"{rounds} interleaved rounds of {per_round} heartbeats each through django.test.Client on PostgreSQL."
    )
    return [
        Measurement(
            "heartbeat by a key with scope + allowlist + rate limit",
            restricted_us,
            "µs",
            baseline="same heartbeat by a key without them",
            baseline_value=plain_us,
            target="<= 1.15x",
            ok=restricted_us / plain_us <= 1.15,
        ),
        Measurement(
            "queries per restricted-key request (view makes none)",
            len(captured.captured_queries),
            "queries",
            target="<= 1",
            ok=len(captured.captured_queries) <= 1,
        ),
    ]


def _rotated_figures(ctx: Context, jwt_header: str, tenant) -> list[Measurement]:
    """A rotated key: one indexed query (prefix OR previous_prefix) whichever secret is sent."""
    from django.db import connection

    from apikeys.services import api_key_create, api_key_rotate
    from core.caller import Caller

    issued = api_key_create(by=Caller.system(tenant_id=tenant.id), name="bench rotated", scopes_requested="read_only")
    client = Client(HTTP_HOST="127.0.0.1")
    _per_request_seconds(client, f"Bearer {issued.secret}", 1)  # used: the rotation keeps it as the previous
    rotated = api_key_rotate(by=Caller.system(tenant_id=tenant.id), api_key=issued.api_key, overlap_seconds=3600)
    headers = {"current": f"Bearer {rotated.secret}", "previous": f"Bearer {issued.secret}", "jwt": jwt_header}
    for header in headers.values():
        _per_request_seconds(client, header, 50)
    rounds, per_round = ctx.scale(21, 5), ctx.scale(100, 40)
    times: dict[str, list[float]] = {label: [] for label in headers}
    labels = list(headers)
    for index in range(rounds):
        order = labels[index % 3 :] + labels[: index % 3]  # rotate who goes first
        for label in order:
            times[label].append(_per_request_seconds(client, headers[label], per_round))
    median_us = {label: statistics.median(values) * 1e6 for label, values in times.items()}
    queries = {}
    for label in ("current", "previous"):
        with CaptureQueriesContext(connection) as captured:
            client.get(TRIVIAL_PATH, HTTP_AUTHORIZATION=headers[label])
        queries[label] = len(captured.captured_queries)
    figures = []
    for label in ("current", "previous"):
        ratio = median_us[label] / median_us["jwt"]
        figures.append(
            Measurement(
                f"request by a rotated key's {label} secret",
                median_us[label],
                "µs",
                baseline="same request by JWT",
                baseline_value=median_us["jwt"],
                target="<= 1.0x",
                ok=ratio <= 1.0,
            )
        )
        figures.append(
            Measurement(
                f"queries per request by a rotated key's {label} secret",
                queries[label],
                "queries",
                target="<= 1",
                ok=queries[label] <= 1,
            )
        )
    ctx.notes.append(
        f"Rotated key: median of {rounds} rounds of {per_round} requests each, current secret, previous secret "
        "(within its overlap) and JWT interleaved, on the same trivial endpoint."
    )
    return figures


def run(ctx: Context) -> list[Measurement]:
    ctx.truncate_all()
    from apikeys.services import api_key_create
    from core.caller import Caller
    from tenants.models import Tenant
    from users.models import Role, User
    from users.tokens import token_pair_for

    tenant = Tenant.objects.create(name="Bench Plant", tier="professional")
    user = User.objects.create_user("bench@haltless.test", "Bench-Password-42!", tenant=tenant, role=Role.VIEWER)
    issued = api_key_create(by=Caller.system(tenant_id=tenant.id), name="bench", scopes_requested="read_only")
    key_header = f"Bearer {issued.secret}"
    jwt_header = f"Bearer {token_pair_for(user)['access']}"

    with override_settings(ROOT_URLCONF=__name__):
        figures = _request_figures(ctx, key_header, jwt_header)
        figures += _rotated_figures(ctx, jwt_header, tenant)
    figures += _verification_figures(ctx, issued.secret, issued.api_key.key_digest)
    figures += _restricted_figures(ctx)
    ctx.truncate_all()
    return figures
