"""Tiers and their retention windows: configuration (settings.HALTLESS_TIERS), not code.

A tier's entry is `{"readings": days, "rollups": days}` (heartbeats follow the
readings' window: Part 1's windows are the raw data's). A bare number is read as
the raw window, with rollups kept as long as the raw data (tests and older
configurations use that form).
"""

from django.conf import settings

# The data classes a retention policy sets a window for.
DATA_CLASSES = ("readings", "heartbeats", "rollups")


def tier_names() -> list[str]:
    return list(settings.HALTLESS_TIERS)


def tier_choices() -> list[tuple[str, str]]:
    return [(name, f"{name} ({retention_days(name)} days)") for name in settings.HALTLESS_TIERS]


def tier_windows(tier: str) -> dict[str, int]:
    """The tier's window, in days, of each data class (the caps of a tenant's retention policy)."""
    entry = settings.HALTLESS_TIERS[tier]
    if isinstance(entry, dict):
        raw = int(entry["readings"])
        return {"readings": raw, "heartbeats": int(entry.get("heartbeats", raw)), "rollups": int(entry["rollups"])}
    raw = int(entry)
    return {"readings": raw, "heartbeats": raw, "rollups": raw}


def retention_days(tier: str) -> int:
    return tier_windows(tier)["readings"]
