"""Display units a user may choose, and conversions into them.

Only temperature, pressure and vibration have user-selectable units. Values are
stored in their kind's canonical unit, which telemetry defines for every sensor
kind (telemetry.models.CANONICAL_UNITS); for these three it is the first choice
below (°C, bar, mm/s), which is also the default.
"""

# Per preference kind: the allowed choices, the first being the default (and the canonical unit).
UNIT_CHOICES: dict[str, tuple[str, ...]] = {
    "temperature": ("celsius", "fahrenheit", "kelvin"),
    "pressure": ("bar", "psi", "kpa", "mpa", "atm"),
    "vibration": ("mm_s", "in_s"),
}
DEFAULT_UNITS: dict[str, str] = {kind: choices[0] for kind, choices in UNIT_CHOICES.items()}

# Value in the unit = canonical value * factor (+ offset for temperatures).
_PRESSURE_PER_BAR = {"bar": 1.0, "psi": 14.503773773, "kpa": 100.0, "mpa": 0.1, "atm": 1 / 1.01325}
_VIBRATION_PER_MM_S = {"mm_s": 1.0, "in_s": 1 / 25.4}


def convert(kind: str, value: float, unit: str) -> float:
    """Convert a canonical value of a preference `kind` to `unit` (one of its choices)."""
    if kind == "temperature":
        if unit == "celsius":
            return value
        if unit == "fahrenheit":
            return value * 9 / 5 + 32
        if unit == "kelvin":
            return value + 273.15
    elif kind == "pressure" and unit in _PRESSURE_PER_BAR:
        return value * _PRESSURE_PER_BAR[unit]
    elif kind == "vibration" and unit in _VIBRATION_PER_MM_S:
        return value * _VIBRATION_PER_MM_S[unit]
    raise ValueError(f"Cannot convert {kind} to {unit!r}.")


def preferred_unit(kind: str, preferences: dict[str, str] | None) -> str | None:
    """The unit a user's `preferences` show a value of `kind` in; None for a kind without a choice."""
    if preferences and kind in UNIT_CHOICES:
        return preferences.get(kind, DEFAULT_UNITS[kind])
    return None
