"""Who is calling: one typed value, built in one place for a request and explicitly elsewhere.

A service never looks at a request. It takes `by: Caller` and reads from it the
principal (for the audit trail and role rules), the tenant (for scoping) and the
client address (for the audit trail and address rules). The API views and the
admin build the Caller with `caller_of(request)`; management commands, beat and
Celery tasks build it with `Caller.system(tenant_id=...)` or `Caller.acting(...)`.

`core` knows no app: a principal is anything with the attributes of `Principal`
(a `users.User`, an `apikeys.ApiKeyPrincipal`, an `audit.NamedActor`).
"""

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from django.http import HttpRequest

from core.http import client_ip


@runtime_checkable
class Principal(Protocol):
    """What every principal has. A user also has `is_tenant_admin`; a key also `has_scope()`."""

    pk: Any
    tenant_id: UUID | None
    is_api_key: bool
    is_user: bool


@dataclass(frozen=True, slots=True)
class Caller:
    """The principal acting (None: the system), the tenant acted on and the client's address."""

    principal: Principal | None
    tenant_id: UUID | None
    client_ip: str | None = None

    @classmethod
    def acting(cls, principal: Principal, *, client_ip: str | None = None, tenant_id: UUID | None = None) -> "Caller":
        """A principal acting on its own tenant (or on `tenant_id`: platform staff, a public report)."""
        return cls(principal=principal, tenant_id=tenant_id or principal.tenant_id, client_ip=client_ip)

    @classmethod
    def system(cls, *, tenant_id: UUID | None, client_ip: str | None = None) -> "Caller":
        """Nobody in particular: beat, a task, a command, the service's own bookkeeping."""
        return cls(principal=None, tenant_id=tenant_id, client_ip=client_ip)

    def on_tenant(self, tenant_id: UUID) -> "Caller":
        """The same principal and address acting on `tenant_id` (platform staff in the admin)."""
        return Caller(principal=self.principal, tenant_id=tenant_id, client_ip=self.client_ip)

    @property
    def user(self) -> Any | None:
        """The user acting, or None for an API key, a named actor or the system."""
        principal = self.principal
        return principal if principal is not None and principal.is_user else None

    @property
    def is_api_key(self) -> bool:
        return self.principal is not None and self.principal.is_api_key

    @property
    def is_system(self) -> bool:
        return self.principal is None


def caller_of(request: HttpRequest, *, principal: Principal | None = None) -> Caller:
    """The Caller of an API or admin request: the one place a request becomes a Caller.

    The principal is `request.user`, or `principal` while an authentication class is still
    establishing it (an API key's allowlist and rate limit need the address first).
    An anonymous request (login, a public report) has no principal and no tenant.
    """
    user = principal if principal is not None else getattr(request, "user", None)
    address = client_ip(request)
    if user is None or not getattr(user, "is_authenticated", False):
        return Caller.system(tenant_id=None, client_ip=address)
    return Caller(principal=user, tenant_id=user.tenant_id, client_ip=address)
