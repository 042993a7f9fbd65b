"""Units: the canonical unit of each sensor kind, user choices, and conversions.

Values are stored canonical (°C, bar, mm/s, A, rpm). Only temperature,
pressure and vibration have user-selectable units.
"""

CANONICAL_UNITS: dict[str, str] = {
    "temperature": "celsius",
    "pressure": "bar",
    "vibration": "mm_s",
    "current": "A",
    "speed": "rpm",
    "other": "",
}

# Per preference kind: the allowed choices, the first being the default.
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
    """Convert a canonical value of a sensor `kind` to `unit` (a preference choice)."""
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
    elif unit == CANONICAL_UNITS.get(kind):
        return value
    raise ValueError(f"Cannot convert {kind} to {unit!r}.")


def display_unit(kind: str, preferences: dict[str, str] | None) -> str:
    """The unit a value of `kind` is shown in: the preference, else canonical."""
    if preferences and kind in UNIT_CHOICES:
        return preferences.get(kind, DEFAULT_UNITS[kind])
    return CANONICAL_UNITS.get(kind, "")
