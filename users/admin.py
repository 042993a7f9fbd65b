from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from users.models import User


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "tenant", "role", "full_name")


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = UserCreationForm
    form = UserEditForm
    list_display = ["email", "full_name", "tenant", "role", "is_active", "is_staff", "last_login", "date_joined"]
    list_filter = ["tenant", "role", "is_active", "is_staff"]
    list_select_related = ["tenant"]
    search_fields = ["email", "full_name", "tenant__name"]
    ordering = ["email"]
    readonly_fields = ["id", "last_login", "date_joined"]
    fieldsets = (
        (None, {"fields": ("id", "email", "password")}),
        ("Profile", {"fields": ("full_name", "tenant", "role")}),
        ("Status", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "tenant", "role", "full_name", "password1", "password2")}),
    )
