"""Tenancy in one place: every tenant-owned model's queryset answers `for_tenant(tenant_id)`.

Selectors read through it, `TenantScopedMixin` scopes a view's queryset with it and
`core.admin.TenantScopedAdmin` scopes the admin with it, so a row of another tenant is
simply not found (404, never 403) and no code filters by tenant by hand.
"""

from uuid import UUID

from django.db import models
from django.db.models import QuerySet


class TenantQuerySet(QuerySet):
    """A queryset of rows that belong to a tenant; `tenant_path` says how a row reaches it."""

    tenant_path = "tenant"

    def for_tenant(self, tenant_id: UUID | None) -> "TenantQuerySet":
        """The tenant's rows; none at all without a tenant."""
        if tenant_id is None:
            return self.none()
        return self.filter(**{f"{self.tenant_path}_id": tenant_id})


def tenant_queryset(path: str) -> type[TenantQuerySet]:
    """A TenantQuerySet for rows that reach their tenant along `path` ("machine__tenant", ...)."""
    return type(f"TenantQuerySet_{path}", (TenantQuerySet,), {"tenant_path": path})


TenantManager = models.Manager.from_queryset(TenantQuerySet)


def request_tenant_id(request) -> UUID | None:
    """The tenant of whoever is calling: a user or an API key (see core.caller)."""
    return getattr(request.user, "tenant_id", None)


class TenantScopedMixin:
    """A view whose `get_queryset()` holds the caller's tenant's rows only, via `for_tenant()`."""

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().for_tenant(request_tenant_id(self.request))
