from django.contrib.auth.backends import ModelBackend

from users.models import User, normalize_email


class EmailBackend(ModelBackend):
    """Log in by email, in any case; inactive users are refused (ModelBackend's rule)."""

    def authenticate(self, request, email: str | None = None, password: str | None = None, **kwargs):
        email = email or kwargs.get(User.USERNAME_FIELD)
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
