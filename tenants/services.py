"""Writes on tenants: platform staff's (the admin, the commands), never a tenant's own."""

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from core.caller import Caller
from tenants import tiers
from tenants.models import Tenant

# Called with (tenant=, by=) after a tenant's tier changed, in the same transaction. The apps
# above register theirs when ready (retention lowers a policy's windows to the new tier's caps),
# so tenants imports none of them.
tier_change_hooks: list[Callable[..., None]] = []


def tenant_validate(*, name: str, tier: str, exclude_pk=None) -> tuple[str, str]:
    """A tenant's name and tier as they are saved; raises ValidationError({"name" | "tier": ...}).

    Names are unique in any case. The admin's form calls this too, so it shows what
    the service would refuse.
    """
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A tenant needs a name."})
    if tier not in settings.HALTLESS_TIERS:
        raise ValidationError({"tier": f"Unknown tier {tier!r}; choose one of: {', '.join(tiers.tier_names())}."})
    taken = Tenant.objects.filter(name__iexact=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError({"name": f"A tenant named {name!r} already exists."})
    return name, tier


@transaction.atomic
def tenant_create(*, name: str, tier: str | None = None) -> Tenant:
    name, tier = tenant_validate(name=name, tier=tier or settings.HALTLESS_DEFAULT_TIER)
    return Tenant.objects.create(name=name, tier=tier)


@transaction.atomic
def tenant_update(*, by: Caller, tenant: Tenant, name: str, tier: str) -> Tenant:
    """Rename a tenant or change its tier; a tier change runs the `tier_change_hooks` (audited there)."""
    name, tier = tenant_validate(name=name, tier=tier, exclude_pk=tenant.pk)
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    tier_changed = locked.tier != tier
    locked.name, locked.tier = name, tier
    locked.save(update_fields=["name", "tier"])
    if tier_changed:
        for hook in tier_change_hooks:
            hook(tenant=locked, by=by.on_tenant(locked.pk))
    return locked


@transaction.atomic
def tenant_delete(*, by: Caller, tenant: Tenant) -> None:
    """Delete a tenant and everything it owns; its users protect it (deactivate, do not delete, people)."""
    tenant.delete()
