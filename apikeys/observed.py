"""Observed addresses of API keys: where each key is used from, to help an admin write its allowlist.

Recording must not cost a database write per request, so uses are counted in
a buffer (a Redis hash per key when Redis is configured, shared by every
process, written by the rate limiter's script in the same round trip; a dict
in this process otherwise, or while Redis is down) and moved
into the database (apikeys.ObservedIp) in batches: when someone reads a key's
list, and from the in-process buffer at most once a minute. The buffer is not
the cache, so it never competes with login lockouts for room, and the durable
copy is the database. At most MAX_PER_KEY networks per key are kept (the most
recently seen), over the last RETENTION.
"""

import threading
import time
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apikeys import network, redis_store
from apikeys.models import ObservedIp

MAX_PER_KEY = 100
RETENTION = timedelta(days=30)
LOCAL_FLUSH_EVERY_SECONDS = 60.0
PENDING_SET = "oip:pending"

# Take (read and delete) a key's pending hash.
TAKE_SCRIPT = """
local data = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return data
"""


def pending_key(api_key_id) -> str:
    """The Redis hash of a key's uses not yet in the database (written by apikeys.ratelimit's script)."""
    return f"oip:{api_key_id}"


class _LocalBuffer:
    def __init__(self):
        self.lock = threading.Lock()
        self.uses: dict[str, dict[str, list[int]]] = {}  # key id -> network -> [count, first, last]
        self.flushed_at = time.monotonic()

    def record(self, api_key_id: str, net: str, now: int) -> None:
        with self.lock:
            per_key = self.uses.setdefault(api_key_id, {})
            entry = per_key.get(net)
            if entry is None:
                if len(per_key) >= MAX_PER_KEY:
                    return
                per_key[net] = [1, now, now]
            else:
                entry[0] += 1
                entry[2] = now

    def take(self, api_key_id: str | None = None) -> dict[str, dict[str, list[int]]]:
        with self.lock:
            if api_key_id is None:
                taken, self.uses = self.uses, {}
                self.flushed_at = time.monotonic()
                return taken
            return {api_key_id: self.uses.pop(api_key_id)} if api_key_id in self.uses else {}


local_buffer = _LocalBuffer()


def record_locally(api_key_id: str, client_ip: str) -> None:
    """Count an allowed use in this process (no Redis, or it is down); flushed at most once a minute."""
    local_buffer.record(api_key_id, network.observed_network(client_ip), int(time.time()))
    if time.monotonic() - local_buffer.flushed_at >= LOCAL_FLUSH_EVERY_SECONDS:
        flush()


def _redis_take(api_key_id: str) -> dict[str, list[int]] | None:
    data = redis_store.run(TAKE_SCRIPT, keys=[pending_key(api_key_id), PENDING_SET], args=[api_key_id])
    if data is None:
        return None
    uses: dict[str, list[int]] = {}
    for index in range(0, len(data), 2):
        field, value = data[index].decode(), int(data[index + 1])
        net, _, part = field.rpartition("|")
        entry = uses.setdefault(net, [0, 0, 0])
        entry[{"n": 0, "f": 1, "l": 2}[part]] = value
    return uses


def flush(api_key_id=None) -> None:
    """Move buffered uses into the database: one key's, or (api_key_id None) this process's all."""
    taken = local_buffer.take(None if api_key_id is None else str(api_key_id))
    if api_key_id is not None:
        from_redis = _redis_take(str(api_key_id))
        if from_redis:
            _merge(taken.setdefault(str(api_key_id), {}), from_redis)
    for key_id, uses in taken.items():
        if uses:
            _store(key_id, uses)


POP_PENDING_SCRIPT = """
return redis.call('SPOP', KEYS[1], tonumber(ARGV[1]))
"""


def flush_all_pending(*, batch: int = 500) -> int:
    """Move every key's buffered uses into the database (the periodic job); the number of keys flushed."""
    flushed = 0
    flush()  # this process's own buffer
    while True:
        key_ids = redis_store.run(POP_PENDING_SCRIPT, keys=[PENDING_SET], args=[batch])
        if not key_ids:
            return flushed
        for key_id in key_ids:
            flush(key_id.decode())
            flushed += 1


def _merge(into: dict[str, list[int]], more: dict[str, list[int]]) -> None:
    for net, (count, first, last) in more.items():
        entry = into.get(net)
        if entry is None:
            into[net] = [count, first, last]
        else:
            entry[0] += count
            entry[1] = min(entry[1], first) if entry[1] else first
            entry[2] = max(entry[2], last)


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@transaction.atomic
def _store(api_key_id: str, uses: dict[str, list[int]]) -> None:
    from apikeys.models import ApiKey

    if not ApiKey.objects.filter(pk=api_key_id).exists():
        return  # deleted meanwhile
    existing = {row.network: row for row in ObservedIp.objects.select_for_update().filter(api_key_id=api_key_id)}
    new_rows = []
    for net, (count, first, last) in uses.items():
        row = existing.get(net)
        if row is None:
            new_rows.append(
                ObservedIp(
                    api_key_id=api_key_id, network=net, first_seen=_at(first), last_seen=_at(last), requests=count
                )
            )
        else:
            row.requests += count
            row.first_seen = min(row.first_seen, _at(first))
            row.last_seen = max(row.last_seen, _at(last))
    ObservedIp.objects.bulk_update(
        [row for net, row in existing.items() if net in uses], ["requests", "first_seen", "last_seen"]
    )
    ObservedIp.objects.bulk_create(new_rows)
    # Keep the most recent MAX_PER_KEY of the retention window.
    ObservedIp.objects.filter(api_key_id=api_key_id, last_seen__lt=timezone.now() - RETENTION).delete()
    keep = ObservedIp.objects.filter(api_key_id=api_key_id).order_by("-last_seen").values("pk")[:MAX_PER_KEY]
    ObservedIp.objects.filter(api_key_id=api_key_id).exclude(pk__in=list(keep.values_list("pk", flat=True))).delete()


def observed_ips(*, api_key) -> list[ObservedIp]:
    """The key's observed networks of the last 30 days, most recently seen first (buffer flushed first)."""
    flush(api_key.pk)
    since = timezone.now() - RETENTION
    return list(ObservedIp.objects.filter(api_key=api_key, last_seen__gte=since).order_by("-last_seen")[:MAX_PER_KEY])
