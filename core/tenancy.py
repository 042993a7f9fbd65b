"""Tenant scoping for querysets: one mixin, so no endpoint can forget the filter."""

from uuid import UUID

from django.db.models import QuerySet


def request_tenant_id(request) -> UUID | None:
    """The tenant of whoever is calling: a user or an API key (see core.permissions)."""
    return getattr(request.user, "tenant_id", None)


class TenantScopedMixin:
    """Filter `get_queryset()` to the caller's tenant.

    Objects of another tenant are then simply not found (404, never 403).
    `tenant_lookup` names the path to the tenant id when it is not on the row.
    """

    tenant_lookup = "tenant_id"

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        tenant_id = request_tenant_id(self.request)
        if tenant_id is None:
            return queryset.none()
        return queryset.filter(**{self.tenant_lookup: tenant_id})
