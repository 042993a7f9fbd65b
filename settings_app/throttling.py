"""Probes of AI servers: at most PROBES_PER_MINUTE a minute per tenant, counted atomically."""

from rest_framework.throttling import BaseThrottle

from core.throttling import Rate, throttle_hit, throttle_key

PROBES_PER_MINUTE = 30
WINDOW_SECONDS = 60


class AiProbeTenantThrottle(BaseThrottle):
    """A one-minute window per tenant on the database counters of core.throttling.

    Counted before deciding, in one statement, so parallel probes cannot pass
    together; the window opens with the first probe (no clock-minute edge to
    burst across) and survives a cache or Redis outage. Per tenant, not per
    admin: a tenant's admins share one budget of outbound requests.
    """

    def allow_request(self, request, view) -> bool:
        self.hit = throttle_hit(
            key=throttle_key(scope="ai_probe", ident=str(request.user.tenant_id)),
            rate=Rate(limit=PROBES_PER_MINUTE, period=WINDOW_SECONDS),
        )
        return self.hit.allowed

    def wait(self) -> float:
        return self.hit.wait_seconds
