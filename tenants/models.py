import uuid

from django.db import models

from tenants import tiers


class Tenant(models.Model):
    """A customer: a plant operator whose users, keys, machines and data belong together."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    # Validated against settings.HALTLESS_TIERS rather than fixed choices, so that
    # tiers stay configuration and changing them needs no migration.
    tier = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def retention_days(self) -> int:
        return tiers.retention_days(self.tier)
