"""The access gate every endpoint inherits.

`core` knows no app. It relies on a small interface of the authenticated
principal (`request.user`):

- every principal has `tenant_id`;
- a principal with `is_api_key = True` is a scoped credential and has
  `has_scope(name)`;
- a user principal has `is_tenant_admin`.

An endpoint opts API keys in by declaring `required_scope`; one that declares
none is for logged-in users only, so a new endpoint is safe by default. An
endpoint that is for API keys only sets `allow_user_login = False`.
"""

from rest_framework.exceptions import MethodNotAllowed
from rest_framework.permissions import SAFE_METHODS, BasePermission

from core import metrics

USER_LOGIN_REQUIRED = "This endpoint requires a user login; API keys are not accepted here."
API_KEY_REQUIRED = "This endpoint is for API keys only; a user login is not accepted here."
NO_TENANT = "Your account does not belong to a tenant."
ADMIN_REQUIRED = "Only a tenant admin may do this."
# `required_scope = ANY_SCOPE`: any valid API key, whatever its scopes (e.g. GET /agent/whoami).
ANY_SCOPE = "*"


def missing_scope_message(scope: str) -> str:
    return f"API key does not have the required scope: {scope}"


def refuse_unserved_method(request, view) -> None:
    """405 for a method the endpoint does not serve, before any credential or role rule.

    DRF checks permissions before it looks for the method's handler, so a TRACE with
    an API key on a user-only endpoint would be told to log in (403) rather than
    that the method does not exist here; which methods exist is public (the schema).
    """
    method = request.method.lower()
    if method not in view.http_method_names or not hasattr(view, method):
        raise MethodNotAllowed(request.method)


class ApiAccess(BasePermission):
    """Authenticated, and let in by credential type; subclasses add role rules."""

    def has_permission(self, request, view) -> bool:
        refuse_unserved_method(request, view)
        principal = request.user
        if not (principal and principal.is_authenticated):
            return False
        if getattr(principal, "is_api_key", False):
            scope = getattr(view, "required_scope", None)
            # An endpoint that also writes may ask a stronger scope for its writes.
            write_scope = getattr(view, "required_write_scope", None)
            if write_scope is not None and request.method not in SAFE_METHODS:
                scope = write_scope
            if scope is None:
                self.message = USER_LOGIN_REQUIRED
                metrics.api_key_auth_failed(reason="scope")
                return False
            if scope != ANY_SCOPE and not principal.has_scope(scope):
                self.message = missing_scope_message(scope)
                metrics.api_key_auth_failed(reason="scope")
                return False
            return True
        if not getattr(view, "allow_user_login", True):
            self.message = API_KEY_REQUIRED
            return False
        if principal.tenant_id is None:
            self.message = NO_TENANT
            return False
        return self.has_role_permission(request, view)

    def has_role_permission(self, request, view) -> bool:
        return True


class IsTenantAdmin(ApiAccess):
    def has_role_permission(self, request, view) -> bool:
        if request.user.is_tenant_admin:
            return True
        self.message = ADMIN_REQUIRED
        return False


class IsTenantAdminForWrites(ApiAccess):
    """Any member reads; only admins write (tenant-wide settings)."""

    def has_role_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS or request.user.is_tenant_admin:
            return True
        self.message = ADMIN_REQUIRED
        return False


class NoApiKeyCredentials(BasePermission):
    """For endpoints open to anyone that are still for users only (login, token refresh):
    a request made with an API key is told it needs a user login (403)."""

    message = USER_LOGIN_REQUIRED

    def has_permission(self, request, view) -> bool:
        refuse_unserved_method(request, view)
        return not getattr(request.user, "is_api_key", False)
