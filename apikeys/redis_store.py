"""The Redis that rate limits and observed addresses share across processes (settings.HALTLESS_REDIS_URL).

Its own small client with short timeouts, not the Django cache: a slow or
down Redis must cost a request milliseconds, and these counters must never
compete with login lockouts for the cache's room. When Redis does not answer,
callers fall back to their in-process state; after a failure Redis is left
alone for a few seconds (not retried on every request), and the outage is
logged once per interval, not per request.
"""

import logging
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_SECONDS = 5.0
WARN_EVERY_SECONDS = 60.0
SOCKET_TIMEOUT_SECONDS = 0.25

_lock = threading.Lock()
_state: dict = {"url": None, "client": None, "scripts": {}, "down_until": 0.0, "warned_at": 0.0}


def _client():
    url = settings.HALTLESS_REDIS_URL
    if not url:
        return None
    if _state["url"] != url:
        import redis

        with _lock:
            _state.update(
                url=url,
                client=redis.Redis.from_url(
                    url, socket_timeout=SOCKET_TIMEOUT_SECONDS, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS
                ),
                scripts={},
                down_until=0.0,
            )
    if time.monotonic() < _state["down_until"]:
        return None
    return _state["client"]


def _script(client, source: str):
    script = _state["scripts"].get(source)
    if script is None:
        script = _state["scripts"][source] = client.register_script(source)
    return script


def run(source: str, *, keys: list, args: list):
    """The script's answer, or None when no Redis is configured or it did not answer."""
    client = _client()
    if client is None:
        return None
    import redis

    try:
        return _script(client, source)(keys=keys, args=args)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        _mark_down(exc)
        return None


def _mark_down(exc: Exception) -> None:
    now = time.monotonic()
    _state["down_until"] = now + RETRY_AFTER_FAILURE_SECONDS
    if now - _state["warned_at"] >= WARN_EVERY_SECONDS:
        _state["warned_at"] = now
        logger.warning(
            "Redis at HALTLESS_REDIS_URL does not answer (%s); rate limits and observed addresses are kept "
            "per process until it does.",
            type(exc).__name__,
        )


def reset() -> None:
    """Forget the client (tests that change the settings)."""
    with _lock:
        _state.update(url=None, client=None, scripts={}, down_until=0.0, warned_at=0.0)
