"""A Redis cache that degrades to a per-process cache while Redis is down, never to a 500.

What the Django cache holds here is worth a little but never a failed request:
the AI probe's throttle history, the admin's one-time reveals, bookkeeping.
(Login lockouts are not in the cache at all: `core.throttling`, database rows.)
So when Redis does not answer, each call falls back to an in-process LocMem
cache: throttles are then enforced by each process alone, not switched off.
After a failure Redis is left alone for a few seconds rather than retried on
every call (short socket timeouts bound the first failure too), and the outage
is logged once per interval, not per request.
"""

import logging
import threading
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_SECONDS = 5.0
WARN_EVERY_SECONDS = 60.0


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.ConnectionError, redis.TimeoutError, OSError)


class _Outage:
    """Whether one Redis is down, shared by every thread of the process (Django makes
    one cache object per thread)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.warned_at = float("-inf")


_outages: dict[str, _Outage] = {}
_outages_lock = threading.Lock()


def _outage_of(server: str) -> _Outage:
    with _outages_lock:
        return _outages.setdefault(server, _Outage())


class FallbackRedisCache(RedisCache):
    """django.core.cache.backends.redis.RedisCache, plus a LocMem stand-in for outages."""

    def __init__(self, server, params):
        super().__init__(server, params)
        # LocMem caches of one name share their storage: one stand-in per process, not per thread.
        self._fallback = LocMemCache(f"redis-fallback:{server}", {"TIMEOUT": params.get("TIMEOUT", 300)})
        self._outage = _outage_of(str(server))
        self._errors = _redis_errors()

    def _call(self, name: str, *args, **kwargs):
        if time.monotonic() >= self._outage.down_until:
            try:
                return getattr(super(), name)(*args, **kwargs)
            except self._errors as exc:
                self._mark_down(exc)
        return getattr(self._fallback, name)(*args, **kwargs)

    def _mark_down(self, exc: BaseException) -> None:
        now = time.monotonic()
        outage = self._outage
        with outage.lock:
            outage.down_until = now + RETRY_AFTER_FAILURE_SECONDS
            warn = now - outage.warned_at >= WARN_EVERY_SECONDS
            if warn:
                outage.warned_at = now
        if warn:
            logger.warning(
                "The Redis cache does not answer (%s); caching per process until it does.", type(exc).__name__
            )

    @property
    def redis_is_down(self) -> bool:
        """Whether the last call to Redis failed a moment ago (for readiness reports)."""
        return time.monotonic() < self._outage.down_until

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("add", key, value, timeout, version)

    def get(self, key, default=None, version=None):
        return self._call("get", key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set", key, value, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("touch", key, timeout, version)

    def delete(self, key, version=None):
        return self._call("delete", key, version)

    def get_many(self, keys, version=None):
        return self._call("get_many", keys, version)

    def has_key(self, key, version=None):
        return self._call("has_key", key, version)

    def incr(self, key, delta=1, version=None):
        return self._call("incr", key, delta, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set_many", data, timeout, version)

    def delete_many(self, keys, version=None):
        return self._call("delete_many", keys, version)

    def clear(self):
        self._fallback.clear()
        return self._call("clear")
