import uuid

from django.conf import settings
from django.db import models

from settings_app.units import DEFAULT_UNITS, UNIT_CHOICES


class UnitPreference(models.Model):
    """A user's display units. No row means the defaults (celsius, bar, mm_s)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="unit_preference")
    temperature = models.CharField(
        max_length=16, choices=[(c, c) for c in UNIT_CHOICES["temperature"]], default=DEFAULT_UNITS["temperature"]
    )
    pressure = models.CharField(
        max_length=16, choices=[(c, c) for c in UNIT_CHOICES["pressure"]], default=DEFAULT_UNITS["pressure"]
    )
    vibration = models.CharField(
        max_length=16, choices=[(c, c) for c in UNIT_CHOICES["vibration"]], default=DEFAULT_UNITS["vibration"]
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"units of {self.user}"

    def as_dict(self) -> dict[str, str]:
        return {kind: getattr(self, kind) for kind in UNIT_CHOICES}
