"""Per-key rate limits: a sliding 60-second window per key id, capped by the tenant's tier.

Counting happens in one-second buckets (a hash of second -> count per key and
per tenant); the window is the last 60 buckets. In Redis a Lua script checks
every limit and counts in one atomic step, so parallel requests on any number
of processes never both take the last slot. Without a Redis (the embedded
mode), or while it is unreachable, each process counts alone under a lock:
limits are then enforced per process (issue 21), never lifted, never a 500.

What a request does is counted only when it is let through; a refused request
costs its sender nothing but time.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from rest_framework import exceptions

from apikeys import network, observed, redis_store

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
EXCEEDED = "API key rate limit exceeded: {limit} {unit} per minute."
BATCH_TOO_LARGE = "A batch may hold at most {limit} readings for this key (its readings_per_minute)."
FIELDS = ("requests_per_minute", "readings_per_minute")


class RateLimited(exceptions.APIException):
    status_code = 429
    default_code = "rate_limited"

    def __init__(self, *, limit: int, unit: str, wait: int):
        super().__init__(EXCEEDED.format(limit=limit, unit=unit))
        self.wait = max(1, int(wait))  # DRF's handler turns it into Retry-After
        self.metrics_limit = f"key_{unit}"  # core.metrics: key_requests or key_readings


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_minute: int
    readings_per_minute: int

    def as_dict(self) -> dict[str, int]:
        return {"requests_per_minute": self.requests_per_minute, "readings_per_minute": self.readings_per_minute}


def tier_caps(tier: str) -> Limits:
    caps = (
        settings.HALTLESS_TIER_RATE_CAPS.get(tier) or settings.HALTLESS_TIER_RATE_CAPS[settings.HALTLESS_DEFAULT_TIER]
    )
    return Limits(caps["requests_per_minute"], caps["readings_per_minute"])


def effective_limits(api_key, caps: Limits | None = None) -> Limits:
    """The key's own limits, null meaning its tier's cap (and never above it)."""
    caps = caps or tier_caps(api_key.tenant.tier)
    if api_key.requests_per_minute is None and api_key.readings_per_minute is None:
        return caps
    return Limits(
        min(api_key.requests_per_minute or caps.requests_per_minute, caps.requests_per_minute),
        min(api_key.readings_per_minute or caps.readings_per_minute, caps.readings_per_minute),
    )


NOT_AN_OBJECT = 'Expected {"requests_per_minute": n|null, "readings_per_minute": n|null}.'


def validate_rate_limit(value: object, *, tier: str | Callable[[], str]) -> dict[str, int | None]:
    """`rate_limit` from a request: the two per-minute values (a missing one is null).

    `tier` may be a function that gives it: it is called only when a limit is
    given (so a key without limits costs no look-up of its tenant's tier).
    Raises ValueError with the messages (unknown member, not a positive whole
    number, above the tier's cap).
    """
    if not isinstance(value, dict):
        raise ValueError([NOT_AN_OBJECT])
    problems: list[str] = [
        f"{name!r} is not a rate limit; use {' or '.join(FIELDS)}." for name in value if name not in FIELDS
    ]
    caps: dict[str, int] | None = None
    cleaned: dict[str, int | None] = {}
    for name in FIELDS:
        given = value.get(name)
        if given is None:
            cleaned[name] = None
            continue
        if type(given) is not int or given < 1:
            problems.append(f"{name}: must be a whole number of at least 1, or null for the tier's cap.")
            continue
        if caps is None:
            tier = tier() if callable(tier) else tier
            caps = tier_caps(tier).as_dict()
        if given > caps[name]:
            problems.append(f"{name}: at most {caps[name]:,} on the {tier} tier.")
        else:
            cleaned[name] = given
    if problems:
        raise ValueError(problems)
    return cleaned


@dataclass(slots=True)
class Outcome:
    allowed: bool
    limit: int  # the key's effective limit of this kind
    count: int  # the key's count in the window (after this one, if allowed)
    reset: int  # seconds until the key's window frees room
    refused_by: int | None = None  # the limit that refused it (the key's, or the tenant's cap)
    retry_after: int = 0
    bucket: int | None = None  # the second it was counted in (to give it back)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


# --- The in-process counter (embedded mode, and Redis down) -----------------------------


class LocalWindow:
    """The Redis script's algorithm for one process, under one lock.

    Each window is a dict of second -> count in insertion order, which is time
    order, so expiring old seconds and finding the oldest look at its head only.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._windows: dict[str, dict[int, int]] = {}

    def _load(self, name: str, now: int) -> tuple[int, dict[int, int]]:
        window = self._windows.get(name)
        if not window:
            return 0, {}
        horizon = now - WINDOW_SECONDS
        while window:
            oldest = next(iter(window))
            if oldest > horizon:
                break
            del window[oldest]
        return sum(window.values()), window

    def hit(self, names: list[str], limits: list[int], cost: int, peek: list[str] = ()) -> list[int]:
        now = int(time.time())
        with self._lock:
            loaded = [self._load(name, now) for name in names]
            peeked = [self._load(name, now)[0] for name in peek]
            counts = [total for total, _ in loaded]
            oldest = next(iter(loaded[0][1]), None) if loaded else None
            first = [] if oldest is None else [(oldest, 0)]
            for index, ((total, window), limit) in enumerate(zip(loaded, limits, strict=True)):
                if total + cost > limit:
                    wait = _wait(sorted(window.items()), total, cost, limit, now)
                    return [0, index + 1, wait, _reset(first, now), *counts, *peeked]
            for name in names:
                window = self._windows.setdefault(name, {})
                window[now] = window.get(now, 0) + cost
            reset = _reset(first, now) if first else WINDOW_SECONDS
            return [1, 0, 0, reset, *[count + cost for count in counts], *peeked, now]

    def refund(self, names: list[str], bucket: int, cost: int) -> None:
        with self._lock:
            for name in names:
                window = self._windows.get(name)
                if window and bucket in window:
                    window[bucket] = max(0, window[bucket] - cost)

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()


def _wait(buckets: list[tuple[int, int]], total: int, need: int, limit: int, now: int) -> int:
    freed = 0
    for second, count in buckets:
        freed += count
        if total - freed + need <= limit:
            return second + WINDOW_SECONDS - now
    return WINDOW_SECONDS


def _reset(buckets: list[tuple[int, int]], now: int) -> int:
    return (min(second for second, _ in buckets) + WINDOW_SECONDS - now) if buckets else 0


local_window = LocalWindow()

# Check every limit in KEYS[1..n] (limits in ARGV[4..]) for a cost of ARGV[1]; count it in all
# of them only if all allow it. The next ARGV[3] keys are only read. When ARGV carries an observed
# network after the limits, the use is also recorded in the key's observed-address buffer (the last
# two KEYS; see apikeys.observed), so that a request costs one round trip. Answers:
# {allowed, index of the refusing limit, retry_after, reset of KEYS[1], counts..., peeked..., bucket}
HIT_SCRIPT = """
local now = tonumber(redis.call('TIME')[1])
local cost = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local npeek = tonumber(ARGV[3])
local function load(key)
  local data = redis.call('HGETALL', key)
  local total, buckets = 0, {}
  for i = 1, #data, 2 do
    local second = tonumber(data[i])
    if second <= now - 60 then
      redis.call('HDEL', key, data[i])
    else
      local count = tonumber(data[i + 1])
      total = total + count
      buckets[#buckets + 1] = {second, count}
    end
  end
  table.sort(buckets, function(a, b) return a[1] < b[1] end)
  return total, buckets
end
local function reset(buckets)
  if #buckets == 0 then return 0 end
  return buckets[1][1] + 60 - now
end
if ARGV[4 + n] then
  local pending, net = KEYS[n + npeek + 1], ARGV[4 + n]
  local count_field = net .. '|n'
  if redis.call('HEXISTS', pending, count_field) == 1 or redis.call('HLEN', pending) < 3 * tonumber(ARGV[6 + n]) then
    redis.call('HINCRBY', pending, count_field, 1)
    redis.call('HSETNX', pending, net .. '|f', now)
    redis.call('HSET', pending, net .. '|l', now)
    redis.call('EXPIRE', pending, 2592000)
    redis.call('SADD', KEYS[n + npeek + 2], ARGV[5 + n])
  end
end
local totals, all = {}, {}
for i = 1, n do
  local total, buckets = load(KEYS[i])
  totals[i], all[i] = total, buckets
end
local peeked = {}
for i = n + 1, n + npeek do
  local total = load(KEYS[i])
  peeked[#peeked + 1] = total
end
for i = 1, n do
  local limit = tonumber(ARGV[3 + i])
  if totals[i] + cost > limit then
    local freed, wait = 0, 60
    for _, bucket in ipairs(all[i]) do
      freed = freed + bucket[2]
      if totals[i] - freed + cost <= limit then wait = bucket[1] + 60 - now; break end
    end
    local answer = {0, i, wait, reset(all[1])}
    for j = 1, n do answer[#answer + 1] = totals[j] end
    for _, total in ipairs(peeked) do answer[#answer + 1] = total end
    return answer
  end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], now, cost)
  redis.call('EXPIRE', KEYS[i], 61)
end
local first = all[1]
local answer = {1, 0, 0, (#first > 0) and reset(first) or 60}
for j = 1, n do answer[#answer + 1] = totals[j] + cost end
for _, total in ipairs(peeked) do answer[#answer + 1] = total end
answer[#answer + 1] = now
return answer
"""

REFUND_SCRIPT = """
for i = 1, #KEYS do
  if redis.call('HEXISTS', KEYS[i], ARGV[1]) == 1 then
    local left = redis.call('HINCRBY', KEYS[i], ARGV[1], -tonumber(ARGV[2]))
    if left <= 0 then redis.call('HDEL', KEYS[i], ARGV[1]) end
  end
end
return 1
"""


@lru_cache(maxsize=65536)
def _names_of(kind: str, key_id, tenant_id) -> tuple[str, str]:
    return f"rl:{kind}:key:{key_id}", f"rl:{kind}:tenant:{tenant_id}"


def _names(kind: str, api_key) -> list[str]:
    return list(_names_of(kind, api_key.pk, api_key.tenant_id))


def _hit(
    names: list[str], limits: list[int], cost: int, peek: list[str] = (), observe: tuple[str, str] | None = None
) -> list[int]:
    """One atomic check-and-count: in Redis when it answers, else in this process.

    `observe` (key id, client address) records the use among the key's observed addresses too.
    """
    keys, args = [*names, *peek], [cost, len(names), len(peek), *limits]
    if observe is not None:
        key_id, address = observe
        keys += [observed.pending_key(key_id), observed.PENDING_SET]
        args += [network.observed_network(address), key_id, observed.MAX_PER_KEY]
    answer = redis_store.run(HIT_SCRIPT, keys=keys, args=args)
    if answer is None:
        if observe is not None:
            observed.record_locally(*observe)
        return local_window.hit(names, limits, cost, list(peek))
    return [int(value) for value in answer]


def _outcome(answer: list[int], *, limits: list[int]) -> Outcome:
    allowed, refused_index, retry_after, reset = answer[:4]
    count = answer[4]
    bucket = answer[-1] if allowed else None
    return Outcome(
        allowed=bool(allowed),
        limit=limits[0],
        count=count,
        reset=max(0, reset),
        refused_by=limits[refused_index - 1] if refused_index else None,
        retry_after=retry_after,
        bucket=bucket,
    )


@dataclass(slots=True)
class RequestCheck:
    outcome: Outcome
    limits: Limits
    readings_in_window: int


def check_request(api_key, *, client_ip: str | None = None) -> RequestCheck:
    """Count one request of `api_key` (and of its tenant), and where it came from (apikeys.observed).

    The answer says whether it is within both limits; the caller refuses it if not.
    """
    tenant_cap = tier_caps(api_key.tenant.tier)
    limits = effective_limits(api_key, tenant_cap)
    names = _names("rq", api_key)
    peek = [_names_of("rd", api_key.pk, api_key.tenant_id)[0]]
    observe = (str(api_key.pk), client_ip) if client_ip else None
    answer = _hit(names, [limits.requests_per_minute, tenant_cap.requests_per_minute], 1, peek, observe)
    outcome = _outcome(answer, limits=[limits.requests_per_minute, tenant_cap.requests_per_minute])
    return RequestCheck(outcome=outcome, limits=limits, readings_in_window=answer[6])


@dataclass(frozen=True)
class ReadingsReservation:
    names: list[str]
    bucket: int
    cost: int


def reserve_readings(api_key, count: int) -> ReadingsReservation:
    """Count `count` readings of `api_key` before they are stored; RateLimited if they would pass a limit."""
    tenant_cap = tier_caps(api_key.tenant.tier)
    limits = effective_limits(api_key, tenant_cap)
    names = _names("rd", api_key)
    caps = [limits.readings_per_minute, tenant_cap.readings_per_minute]
    outcome = _outcome(_hit(names, caps, count), limits=caps)
    if not outcome.allowed:
        raise RateLimited(limit=outcome.refused_by, unit="readings", wait=outcome.retry_after)
    return ReadingsReservation(names=names, bucket=outcome.bucket, cost=count)


def release_readings(reservation: ReadingsReservation) -> None:
    """Give back readings counted for a batch that was not stored after all."""
    if redis_store.run(REFUND_SCRIPT, keys=reservation.names, args=[reservation.bucket, reservation.cost]) is None:
        local_window.refund(reservation.names, reservation.bucket, reservation.cost)


def backoff_seconds(check: RequestCheck) -> int:
    """How long an agent should wait before its next call: 0 unless the key is at a limit."""
    wait = 0
    if check.outcome.remaining == 0:
        wait = check.outcome.reset
    if check.readings_in_window >= check.limits.readings_per_minute:
        wait = max(wait, WINDOW_SECONDS)
    return int(wait)


def headers(check: RequestCheck) -> dict[str, str]:
    """The RateLimit-* headers of the request window (IETF draft fields)."""
    outcome = check.outcome
    return {
        "RateLimit-Limit": str(outcome.limit),
        "RateLimit-Remaining": str(outcome.remaining),
        "RateLimit-Reset": str(outcome.reset),
    }
