"""'At most once per interval' across every process (Redis when configured, else this process)."""

import threading
import time

from apikeys import redis_store

FIRST_IN_SCRIPT = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then return 1 end
return 0
"""

_lock = threading.Lock()
_local: dict[str, float] = {}


def first_in(name: str, *, seconds: int) -> bool:
    """True for the first call with `name` in each `seconds`, False for the rest."""
    answer = redis_store.run(FIRST_IN_SCRIPT, keys=[f"sample:{name}"], args=[seconds])
    if answer is not None:
        return bool(int(answer))
    now = time.monotonic()
    with _lock:
        if _local.get(name, 0.0) > now:
            return False
        if len(_local) > 10_000:
            for stale in [key for key, until in _local.items() if until <= now]:
                del _local[stale]
        _local[name] = now + seconds
        return True


def clear() -> None:
    with _lock:
        _local.clear()
