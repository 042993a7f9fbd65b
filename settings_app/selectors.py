from settings_app.models import UnitPreference
from settings_app.units import DEFAULT_UNITS


def unit_preferences_for(user) -> dict[str, str]:
    """The user's display units; defaults when none are saved (one query)."""
    pref = UnitPreference.objects.filter(user=user).first()
    return pref.as_dict() if pref else dict(DEFAULT_UNITS)
