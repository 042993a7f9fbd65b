"""The units a caller sees: a user's preferences, or canonical for an API key.

Conversions into a user's units live in settings_app.units, the canonical unit of
each sensor kind in telemetry.models; this only decides, once per request, which
unit each sensor kind is shown in.
"""

from collections.abc import Iterable

from core.caller import Caller
from settings_app.selectors import unit_preferences_get
from settings_app.units import convert, preferred_unit
from telemetry.models import CANONICAL_UNITS, value_saturate
from telemetry.selectors import Bucket


class DisplayUnits:
    """Unit labels and value conversion for one caller.

    Labels: the preference names for temperature, pressure and vibration
    (`celsius`, `fahrenheit`, `kelvin`, `bar`, `psi`, `kpa`, `mpa`, `atm`,
    `mm_s`, `in_s`), `A` and `rpm` for current and speed, None for `other`.
    """

    def __init__(self, preferences: dict[str, str] | None):
        self.preferences = preferences
        self._units = {
            kind: preferred_unit(kind, preferences) or canonical or None for kind, canonical in CANONICAL_UNITS.items()
        }

    @classmethod
    def for_caller(cls, by: Caller) -> "DisplayUnits":
        """A user's preferences; canonical units for an API key (or nobody)."""
        return cls(None) if by.user is None else cls(unit_preferences_get(user=by.user))

    def unit(self, kind: str) -> str | None:
        return self._units.get(kind)

    def value(self, kind: str, value: float | None) -> float | None:
        """The value in this caller's unit; always finite, or None.

        A value stored before ingest bounded them is clamped to its kind's bounds
        first, so no conversion can overflow to infinity (which JSON cannot carry).
        """
        if value is None:
            return None
        value = value_saturate(kind, value)
        unit = self._units.get(kind)
        if value is None or unit is None or unit == CANONICAL_UNITS.get(kind):
            return value
        return convert(kind, value, unit)

    def buckets(self, kind: str, buckets: Iterable[Bucket]) -> list[dict]:
        """Aggregate buckets with min, max and avg in this caller's unit."""
        value = self.value
        return [
            {
                "start": bucket.start,
                "min": value(kind, bucket.min),
                "max": value(kind, bucket.max),
                "avg": value(kind, bucket.avg),
                "count": bucket.count,
                "source": bucket.source,
            }
            for bucket in buckets
        ]
