from django.db import models


class ThrottleCounter(models.Model):
    """One throttle window: how many hits `key` has had until `window_ends_at`.

    Kept in the database rather than the cache because a lockout must survive
    anything a client can do: a cache evicts its oldest entries under a flood
    and forgets everything when Redis restarts; a row does neither. Written
    only by `core.throttling.throttle_hit` (one atomic upsert).
    """

    key = models.CharField(max_length=120, unique=True)
    count = models.PositiveIntegerField(default=0)
    # Unix time (seconds): the upsert compares it in SQL on SQLite and PostgreSQL alike.
    window_ends_at = models.FloatField(db_index=True)

    class Meta:
        # core.throttling writes this table by name in its one raw statement.
        db_table = "core_throttlecounter"

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
