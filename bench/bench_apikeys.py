"""What an API key costs: per request against a JWT, per verification against PBKDF2.

1. The same trivial endpoint (it declares `read:machines`, so both a key and a
   user may call it, and it makes no query of its own) through Django's full
   request stack (test client, every middleware, DRF), authenticated by API
   key and by JWT, in interleaved rounds. Target: key <= 1.1 x JWT.
2. The queries each request makes (the endpoint makes none, so they are
   authentication's). Target: one.
3. One key verification (format and checksum, SHA-256, constant-time compare)
   against one PBKDF2 verification at Django's default iterations, what
   password-hasher-based key libraries paid per request. Target: >= 1000x cheaper.

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
            target="<= 1.1x",
            ok=ratio <= 1.1,
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


def run(ctx: Context) -> list[Measurement]:
    ctx.truncate_all()
    from apikeys.services import api_key_create
    from tenants.models import Tenant
    from users.models import Role, User
    from users.tokens import token_pair_for

    tenant = Tenant.objects.create(name="Bench Plant", tier="professional")
    user = User.objects.create_user("bench@haltless.test", "Bench-Password-42!", tenant=tenant, role=Role.VIEWER)
    issued = api_key_create(tenant=tenant, name="bench", scopes_requested="read_only")
    key_header = f"Bearer {issued.secret}"
    jwt_header = f"Bearer {token_pair_for(user)['access']}"

    with override_settings(ROOT_URLCONF=__name__):
        figures = _request_figures(ctx, key_header, jwt_header)
    figures += _verification_figures(ctx, issued.secret, issued.api_key.key_digest)
    ctx.truncate_all()
    return figures
