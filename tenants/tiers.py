"""Tiers and their retention windows: configuration (settings.HALTLESS_TIERS), not code."""

from django.conf import settings


def tier_names() -> list[str]:
    return list(settings.HALTLESS_TIERS)


def tier_choices() -> list[tuple[str, str]]:
    return [(name, f"{name} ({days} days)") for name, days in settings.HALTLESS_TIERS.items()]


def retention_days(tier: str) -> int:
    return settings.HALTLESS_TIERS[tier]
