import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from core.tenancy import TenantQuerySet


class Role(models.TextChoices):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


def normalize_email(email: str) -> str:
    """Emails are case-insensitive here: stored and compared in lower case."""
    return BaseUserManager.normalize_email(email.strip()).lower()


class UserManager(BaseUserManager.from_queryset(TenantQuerySet)):
    use_in_migrations = True

    def get_by_natural_key(self, email: str):
        return self.get(email=normalize_email(email))

    def create_user(self, email: str, password: str | None = None, **fields):
        user = self.model(email=normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields):
        # Platform staff: the Django admin over every tenant, no tenant of their own.
        fields.update(is_staff=True, is_superuser=True, role=Role.ADMIN)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in with an email address.

    `role` governs the REST API within the user's tenant; `is_staff` is for
    platform staff in the Django admin, who may have no tenant.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="users", null=True, blank=True)
    email = models.EmailField(max_length=254, unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Platform staff: may use the Django admin.")
    date_joined = models.DateTimeField(default=timezone.now)
    # Every JWT carries the value this had when it was issued; bumping it (password
    # change, deactivation) revokes all earlier tokens, checked on the user row that
    # authentication loads anyway.
    token_version = models.PositiveIntegerField(default=0, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    # The principal interface (core.caller.Principal): a person, not a credential.
    is_user = True
    is_api_key = False

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="users_user_email_ci_unique"),
            models.CheckConstraint(
                condition=models.Q(tenant__isnull=False) | models.Q(is_staff=True),
                name="users_user_tenant_or_staff",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "role", "is_active"], name="users_tenant_role_idx")]

    def __str__(self) -> str:
        return self.email

    @property
    def is_tenant_admin(self) -> bool:
        return self.role == Role.ADMIN and self.tenant_id is not None

    def set_password(self, raw_password: str | None) -> None:
        # Kept here rather than in a service so that every path that changes a
        # password (API, admin, `changepassword`) also ends the old sessions.
        super().set_password(raw_password)
        self.token_version += 1

    def set_unusable_password(self) -> None:
        # Turning password login off (e.g. in the Django admin) ends the sessions too.
        super().set_unusable_password()
        self.token_version += 1

    def check_password(self, raw_password: str) -> bool:
        # Django re-hashes a correct password when the hasher's settings change.
        # The password itself is the same, so this must not revoke any session:
        # store the new hash without the token_version bump of set_password.
        def rehash(raw: str) -> None:
            AbstractBaseUser.set_password(self, raw)
            self._password = None
            self.save(update_fields=["password"])

        return check_password(raw_password, self.password, rehash)
