"""Throttle counters that a client cannot race, evict or reset.

`throttle_hit` counts first and decides after, in one atomic statement
(`INSERT … ON CONFLICT DO UPDATE … RETURNING`, on SQLite and PostgreSQL), so
N parallel requests get counts 1…N and exactly `limit` of them are let through;
there is no read-then-write window for a lost update. Counters live in the
database (`core.ThrottleCounter`), so a flood of other keys cannot evict one
and a Redis outage or restart does not unlock anything.

A window opens with the first hit of a key and lasts `period` seconds; hits
past `limit` inside it are refused until it ends, and refused hits do not
extend it. `throttle_hits` counts several keys in one statement;
`throttle_release` gives hits back (a login that turned out to be correct does
not use up its owner's budget).

Rates are written as DRF writes them: "10/min", "30/hour" ("s", "m", "h", "d").
"""

import hashlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, Q

from core.models import ThrottleCounter

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# One hit in this many sweeps away windows that ended long ago, so the table stays small
# (None: never; the tests that pin query counts turn it off, see conftest.py).
_SWEEP_ONE_IN: int | None = 200
_SWEEP_AFTER_SECONDS = 86400


# One statement, so parallel hits cannot lose an update. In SET, column names refer to
# the row as it was before the statement (SQLite 3.35+ and PostgreSQL alike). The VALUES
# list holds one `(%s, 1, %s)` per key.
_HIT_SQL = """
INSERT INTO "core_throttlecounter" ("key", "count", "window_ends_at") VALUES {values}
ON CONFLICT ("key") DO UPDATE SET
  "count" = CASE WHEN "core_throttlecounter"."window_ends_at" <= %s
            THEN 1 ELSE "core_throttlecounter"."count" + 1 END,
  "window_ends_at" = CASE WHEN "core_throttlecounter"."window_ends_at" <= %s
            THEN excluded."window_ends_at" ELSE "core_throttlecounter"."window_ends_at" END
RETURNING "key", "count", "window_ends_at"
"""


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int  # seconds

    @classmethod
    def parse(cls, rate: str) -> "Rate":
        """'10/min' -> Rate(10, 60)."""
        count, _, period = rate.partition("/")
        return cls(limit=int(count), period=_PERIODS[period.strip()[0]])


@dataclass(frozen=True)
class ThrottleHit:
    key: str
    count: int
    limit: int
    window_ends_at: float

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def wait_seconds(self) -> int:
        """Seconds until the window ends (for Retry-After), at least 1."""
        return max(1, int(self.window_ends_at - time.time() + 0.999))


def throttle_key(*, scope: str, ident: str) -> str:
    """`scope:` plus a digest of the identity, so emails and addresses are not stored in clear."""
    # surrogatepass: a lone surrogate in a hostile body must not become a 500.
    digest = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{scope}:{digest}"


def throttle_hit(*, key: str, rate: Rate, now: float | None = None) -> ThrottleHit:
    """Count one hit of `key` and say whether it is within `rate` (count first, then decide)."""
    return throttle_hits(keys=[(key, rate)], now=now)[0]


def throttle_hits(*, keys: Sequence[tuple[str, Rate]], now: float | None = None) -> list[ThrottleHit]:
    """Count one hit of each (key, rate), in one statement; the hits in the order given."""
    now = time.time() if now is None else now
    rates = dict(keys)
    assert len(rates) == len(keys), "each key once"
    # Rows in key order: two statements touching the same keys lock them in the same order.
    ordered = sorted(rates)
    params: list = []
    for key in ordered:
        params += [key, now + rates[key].period]
    sql = _HIT_SQL.format(values=", ".join(["(%s, 1, %s)"] * len(ordered)))
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, now, now])
        counted = {key: (count, window_ends_at) for key, count, window_ends_at in cursor.fetchall()}
    if _SWEEP_ONE_IN and random.randrange(_SWEEP_ONE_IN) == 0:  # noqa: S311 (sampling, not a secret)
        ThrottleCounter.objects.filter(window_ends_at__lt=now - _SWEEP_AFTER_SECONDS).delete()
    return [
        ThrottleHit(key=key, count=counted[key][0], limit=rate.limit, window_ends_at=counted[key][1])
        for key, rate in keys
    ]


def throttle_release(*hits: ThrottleHit) -> None:
    """Give back one counted hit of each, if its window is still the one it was counted in."""
    if not hits:
        return
    same_window = Q()
    for hit in hits:
        same_window |= Q(key=hit.key, window_ends_at=hit.window_ends_at)
    ThrottleCounter.objects.filter(same_window, count__gt=0).update(count=F("count") - 1)


def throttle_reset(*, key: str) -> None:
    """Forget a key's window (tests and operators; never called on a client's behalf)."""
    ThrottleCounter.objects.filter(key=key).delete()
