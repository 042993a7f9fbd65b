"""Users in the Django admin: platform staff see everyone, a tenant admin their tenant's people.

Role and activity changes go through the same services as the API, so the
same rules hold here: no one deactivates themselves, and no tenant is left
without an active admin. Users are never deleted, only deactivated.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm, UserChangeForm
from django.core.exceptions import PermissionDenied, ValidationError

from core.admin import ServiceBackedAdmin, is_tenant_admin
from core.caller import Caller, caller_of
from users import services
from users.admin_login import ThrottledConsoleLoginForm
from users.models import Role, User, normalize_email
from users.selectors import user_active_admin_count

# The console's login shares the login throttles of /auth/token (users.throttles).
admin.site.login_form = ThrottledConsoleLoginForm


class _NormalizedEmailMixin:
    def clean_email(self) -> str:
        # Logins look emails up in lower case; store them so.
        return normalize_email(self.cleaned_data["email"])


class UserCreationForm(_NormalizedEmailMixin, BaseUserCreationForm):
    """A tenant user with a usable password (no password-less accounts here)."""

    class Meta:
        model = User
        fields = ("email", "tenant", "role", "full_name")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Platform staff are made with `createsuperuser`; a user made here is a tenant member.
        if "tenant" in self.fields:  # a tenant admin's form has none: the user joins their tenant
            self.fields["tenant"].required = True


class UserEditForm(_NormalizedEmailMixin, UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        user = self.instance
        # A friendly early answer; the service re-checks under a lock when saving.
        if user.pk and user.tenant_id and user.is_active and user.role == Role.ADMIN:
            demoted = cleaned.get("role", user.role) != Role.ADMIN
            deactivated = not cleaned.get("is_active", True)
            if (demoted or deactivated) and user_active_admin_count(tenant_id=user.tenant_id) <= 1:
                message = services.LAST_ADMIN_DEMOTION if demoted else services.LAST_ADMIN_DEACTIVATION
                self.add_error("role" if demoted else "is_active", message)
        return cleaned


@admin.register(User)
class UserAdmin(ServiceBackedAdmin, DjangoUserAdmin):
    add_form = UserCreationForm
    form = UserEditForm
    list_display = ["email", "full_name", "tenant", "role", "is_active", "is_staff", "last_login", "date_joined"]
    list_filter = ["tenant", "role", "is_active", "is_staff"]
    list_select_related = ["tenant"]
    search_fields = ["email", "full_name", "tenant__name"]
    ordering = ["email"]
    readonly_fields = ["id", "last_login", "date_joined"]
    actions = ["deactivate_users", "reactivate_users"]
    fieldsets = (
        (None, {"fields": ("id", "email", "password")}),
        ("Profile", {"fields": ("full_name", "tenant", "role")}),
        ("Status", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "tenant", "role", "full_name", "password1", "password2")}),
    )

    # A tenant admin's view of their people: no platform flags, groups, permissions or password hashes.
    tenant_admin_permissions = frozenset({"view", "add", "change"})
    tenant_admin_fieldsets = (
        (None, {"fields": ("id", "email")}),
        ("Profile", {"fields": ("full_name", "role")}),
        ("Status", {"fields": ("is_active",)}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    _platform_only = {"is_staff", "is_superuser", "groups", "user_permissions", "password"}

    def has_delete_permission(self, request, obj=None) -> bool:
        # Users are deactivated, never deleted: their history and keys stay attributable.
        return False

    def get_fieldsets(self, request, obj=None):
        if is_tenant_admin(request) and obj is not None:
            return self.tenant_admin_fieldsets
        return super().get_fieldsets(request, obj)

    def get_list_display(self, request):
        names = super().get_list_display(request)
        return [n for n in names if n not in self._platform_only] if is_tenant_admin(request) else names

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        return [f for f in filters if f not in self._platform_only] if is_tenant_admin(request) else filters

    def user_change_password(self, request, id, form_url=""):
        # Setting another person's password is for platform staff; a tenant admin changes their own.
        if is_tenant_admin(request) and str(request.user.pk) != str(id):
            raise PermissionDenied
        return super().user_change_password(request, id, form_url)

    def save_through_service(self, request, form: forms.ModelForm, *, by: Caller, change: bool) -> User:
        data = form.cleaned_data
        if not change:
            return services.user_create(
                by=by,
                email=data["email"],
                password=data["password1"],
                full_name=data.get("full_name", ""),
                role=data["role"],
            )
        wanted = form.instance  # the form's values, not saved
        changes = {name: data[name] for name in form.changed_data if name in services.ADMIN_EDITED_FIELDS}
        user = services.user_admin_fields_update(by=by, user=wanted, changes=changes)
        try:
            if wanted.role != user.role:
                user = services.user_role_change(by=by, user=user, role=wanted.role)
            if wanted.is_active != user.is_active:
                change_activity = services.user_reactivate if wanted.is_active else services.user_deactivate
                user = change_activity(by=by, user=user)
        except ValidationError as exc:
            self.message_user(request, f"{user}: {' '.join(exc.messages)}", messages.ERROR)
        return user

    def save_related(self, request, form, formsets, change) -> None:
        # Platform staff's groups and permissions: Django's own auth tables (a tenant admin's form has none).
        for name in ("groups", "user_permissions"):
            if change and name in form.changed_data:
                getattr(form.instance, name).set(form.cleaned_data[name])
        super().save_related(request, form, formsets, change)

    @admin.action(description="Deactivate selected users (ends their sessions)")
    def deactivate_users(self, request, queryset) -> None:
        self._apply(request, queryset, services.user_deactivate, "deactivated")

    @admin.action(description="Reactivate selected users")
    def reactivate_users(self, request, queryset) -> None:
        self._apply(request, queryset, services.user_reactivate, "reactivated")

    def _apply(self, request, queryset, service, verb: str) -> None:
        by, done = caller_of(request), 0
        for user in queryset.order_by("email"):
            try:
                service(by=by, user=user)
            except ValidationError as exc:
                self.message_user(request, f"{user}: {' '.join(exc.messages)}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} user(s) {verb}.", messages.SUCCESS)
