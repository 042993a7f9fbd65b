"""Probes of AI servers: at most PROBES_PER_MINUTE a minute per tenant, counted atomically."""

import time

from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

PROBES_PER_MINUTE = 30
WINDOW_SECONDS = 60


class AiProbeTenantThrottle(BaseThrottle):
    """A fixed one-minute window per tenant, in the shared cache (Redis when configured).

    `add` then `incr` are each atomic, so parallel probes cannot all read the same
    count and pass together, as a read-then-write history would let them.
    Per tenant, not per admin: a tenant's admins share one budget of outbound requests.
    """

    def allow_request(self, request, view) -> bool:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"throttle:ai_probe:{request.user.tenant_id}:{window}"
        cache.add(key, 0, timeout=WINDOW_SECONDS + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr: this request starts the window again
            cache.add(key, 1, timeout=WINDOW_SECONDS + 5)
            count = 1
        self._wait = (window + 1) * WINDOW_SECONDS - now
        return count <= PROBES_PER_MINUTE

    def wait(self) -> float:
        return self._wait
