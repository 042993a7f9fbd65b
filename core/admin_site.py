"""The admin site: platform staff and tenant admins, checked on every request.

The ModelAdmin bases that scope pages to a tenant are in core.admin.
"""

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest

# One message for every refusal at the login form: a wrong password, an inactive
# account, a role that may not use the console. No oracle for which it was.
LOGIN_REFUSED = "Please enter the correct email and password of an admin account."


def is_platform_staff(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff)


def is_tenant_admin(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and not user.is_staff and getattr(user, "is_tenant_admin", False))


class ConsoleLoginForm(AdminAuthenticationForm):
    error_messages = {**AdminAuthenticationForm.error_messages, "invalid_login": LOGIN_REFUSED}

    def confirm_login_allowed(self, user) -> None:
        # Same message as a wrong password, so the form tells no one which accounts exist.
        if not (user.is_active and (user.is_staff or getattr(user, "is_tenant_admin", False))):
            raise ValidationError(LOGIN_REFUSED, code="invalid_login")


class HaltlessAdminSite(admin.AdminSite):
    site_header = "Haltless administration"
    site_title = "Haltless admin"
    index_title = "Site administration"
    login_form = ConsoleLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        # Checked on every admin request against the user row loaded for it, so a
        # demoted or deactivated admin loses the console at once.
        return is_platform_staff(request) or is_tenant_admin(request)

    def each_context(self, request):
        context = super().each_context(request)
        if is_tenant_admin(request):
            context["site_header"] = f"{self.site_header}: {request.user.tenant}"
        return context
