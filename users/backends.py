from django.contrib.auth.backends import ModelBackend

from users.models import User, normalize_email


class EmailBackend(ModelBackend):
    """Log in by email, in any case; inactive users are refused (ModelBackend's rule).

    The API passes `email=`; Django's own forms (the admin login among them) pass
    the identifier as `username=` whatever USERNAME_FIELD is, so both are read.
    """

    def authenticate(
        self,
        request,
        username: str | None = None,
        password: str | None = None,
        email: str | None = None,
        **kwargs,
    ):
        email = email or username or kwargs.get(User.USERNAME_FIELD)
        if not email or password is None:
            return None
        try:
            user = User.objects.get(email=normalize_email(email))
        except User.DoesNotExist:
            # Spend the same time as a real check, so response time does not reveal emails.
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None

    # Django's model permissions are for platform staff. A tenant admin's pages are
    # granted by core.admin.TenantScopedAdmin alone, so a group or permission given
    # to a tenant member by mistake opens no platform page.
    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_staff:
            return set()
        return super().get_all_permissions(user_obj, obj)

    def has_perm(self, user_obj, perm, obj=None):
        return bool(user_obj.is_staff) and super().has_perm(user_obj, perm, obj)

    def has_module_perms(self, user_obj, app_label):
        return bool(user_obj.is_staff) and super().has_module_perms(user_obj, app_label)
