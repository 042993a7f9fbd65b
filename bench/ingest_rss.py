"""Peak memory of one 5,000-reading ingest: `python -m bench.ingest_rss` (run by bench_telemetry).

A fresh process on the bench database: creates a tenant with one machine of
ten sensors and an agent key, posts one small batch (imports, connection,
caches), notes its max RSS, posts one 5,000-reading batch through
django.test.Client, notes the max RSS again, deletes what it created, and
prints both (MiB) as JSON.
"""

import json
import resource
from datetime import UTC, datetime, timedelta


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    import django

    django.setup()
    from django.test import Client

    from apikeys.services import api_key_create
    from core.caller import Caller
    from telemetry.services import MAX_BATCH_SIZE, machine_create
    from tenants.models import Tenant

    tenant = Tenant.objects.create(name="Bench RSS", tier="enterprise")
    machine_create(
        by=Caller.system(tenant_id=tenant.pk),
        external_id="rss",
        name="RSS",
        sensors=[(f"s{i}", "temperature") for i in range(10)],
    )
    secret = api_key_create(
        by=Caller.system(tenant_id=tenant.id), name="rss agent", scopes_requested="edge_agent"
    ).secret
    client = Client()
    start = datetime(2025, 1, 1, tzinfo=UTC)

    def post(count: int, offset: int) -> None:
        readings = [
            {
                "machine": "rss",
                "sensor": f"s{n % 10}",
                "ts": (start + timedelta(seconds=offset + n // 10)).isoformat(),
                "value": n * 0.5,
            }
            for n in range(count)
        ]
        body = json.dumps({"readings": readings})
        response = client.post(
            "/api/v1/ingest", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
        )
        if response.status_code != 202:
            raise RuntimeError(f"ingest answered {response.status_code}: {response.content[:300]!r}")

    try:
        post(10, 0)
        before = _max_rss_mib()
        post(MAX_BATCH_SIZE, 10_000)
        after = _max_rss_mib()
    finally:
        tenant.delete()
    print(json.dumps({"before": before, "after": after}))


if __name__ == "__main__":
    main()
