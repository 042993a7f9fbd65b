from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from tenants import tiers
from tenants.models import Tenant


def _validate_tier(tier: str) -> None:
    if tier not in settings.HALTLESS_TIERS:
        raise ValidationError({"tier": f"Unknown tier {tier!r}; choose one of: {', '.join(tiers.tier_names())}."})


@transaction.atomic
def tenant_create(*, name: str, tier: str | None = None) -> Tenant:
    name = name.strip()
    tier = tier or settings.HALTLESS_DEFAULT_TIER
    if not name:
        raise ValidationError({"name": "A tenant needs a name."})
    _validate_tier(tier)
    if Tenant.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": f"A tenant named {name!r} already exists."})
    return Tenant.objects.create(name=name, tier=tier)


@transaction.atomic
def tenant_set_tier(*, tenant: Tenant, tier: str, actor=None) -> Tenant:
    """Change the tier; explicit retention windows above the new tier's caps are lowered to them."""
    from retention.services import retention_policy_clamp  # retention builds on tenants

    _validate_tier(tier)
    tenant.tier = tier
    tenant.save(update_fields=["tier"])
    retention_policy_clamp(tenant=tenant, actor=actor)
    return tenant
