"""Writes on users. Every state change is audited; no password ever reaches the log.

Rule violations that are not about one input field (self-deactivation, the
last active admin) are raised as a `ValidationError` without a field, with a
`code`; field errors are raised as a dict keyed by field name. The API turns
the first into `{"detail": ...}` and the second into `{"field": [...]}`.
"""

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from audit.services import audit_record
from tenants.models import Tenant
from users.models import Role, User, normalize_email

EMAIL_TAKEN = "A user with this email already exists."
SELF_DEACTIVATION = "You cannot deactivate your own account."
LAST_ADMIN_DEMOTION = "This user is the tenant's last active admin; make another user an admin first."
LAST_ADMIN_DEACTIVATION = "This user is the tenant's last active admin and cannot be deactivated."
ACTOR_NOT_ADMIN = "Only an active tenant admin may do this."
WRONG_CURRENT_PASSWORD = "The current password is incorrect."
CURRENT_PASSWORD_REQUIRED = "Enter your current password to change your email."
SAME_PASSWORD = "The new password must differ from the current one."


def _email_errors(email: str, *, exclude_pk=None) -> list[str]:
    try:
        User._meta.get_field("email").run_validators(email)
    except ValidationError as exc:
        return exc.messages
    taken = User.objects.filter(email=email)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    return [EMAIL_TAKEN] if taken.exists() else []


def _validate_new_user(*, email: str, password: str, full_name: str, role: str) -> str:
    email = normalize_email(email)
    errors: dict[str, list[str]] = {}
    if email_errors := _email_errors(email):
        errors["email"] = email_errors
    if role not in Role.values:
        errors["role"] = [f"Unknown role {role!r}; choose one of: {', '.join(Role.values)}."]
    try:
        validate_password(password, User(email=email, full_name=full_name))
    except ValidationError as exc:
        errors["password"] = exc.messages
    if errors:
        raise ValidationError(errors)
    return email


def _save_unique_email(user: User, update_fields: list[str] | None = None) -> None:
    # The pre-check above can lose a race with a concurrent request; the
    # case-insensitive unique constraint then decides, and is reported as a 400.
    try:
        with transaction.atomic():
            user.save(update_fields=update_fields)
    except IntegrityError:
        if User.objects.filter(email=user.email).exclude(pk=user.pk).exists():
            raise ValidationError({"email": [EMAIL_TAKEN]}) from None
        raise


@transaction.atomic
def user_create(
    *,
    tenant: Tenant,
    email: str,
    password: str,
    full_name: str = "",
    role: str = Role.VIEWER,
    actor=None,
    client_ip: str | None = None,
) -> User:
    """Create a tenant user after the configured password validators accept the password."""
    email = _validate_new_user(email=email, password=password, full_name=full_name, role=role)
    user = User(tenant=tenant, email=email, full_name=full_name.strip(), role=role)
    user.set_password(password)
    _save_unique_email(user)
    audit_record(
        tenant_id=tenant.id,
        action="user.create",
        actor=actor,
        target=user,
        changes={"email": email, "role": role, "full_name": user.full_name},
        client_ip=client_ip,
    )
    return user


def _lock_for_admin_change(*, user: User, actor) -> tuple[User, set]:
    """Lock the tenant's active admins, then the target; return the fresh target and the admin ids.

    Must run inside a transaction. Locking every active admin row of the tenant
    (in primary-key order, so two requests cannot deadlock) serialises all
    changes that could remove an admin: a second request waits here and then
    sees the first one's result. On SQLite this is a no-op; SQLite serialises
    writers by itself.
    """
    admin_ids = set()
    if user.tenant_id is not None:
        admin_ids = set(
            User.objects.select_for_update()
            .filter(tenant_id=user.tenant_id, role=Role.ADMIN, is_active=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    locked = User.objects.select_for_update().get(pk=user.pk)
    # The actor's admin rights were checked before the lock; a concurrent
    # request may have demoted or deactivated them since. Platform staff act
    # through the Django admin and are not tenant members.
    if (
        actor is not None
        and not getattr(actor, "is_staff", False)
        and getattr(actor, "tenant_id", None) == user.tenant_id
        and actor.pk not in admin_ids
    ):
        raise PermissionDenied(ACTOR_NOT_ADMIN)
    return locked, admin_ids


def _is_last_active_admin(user: User, admin_ids: set) -> bool:
    return user.tenant_id is not None and user.is_active and user.role == Role.ADMIN and admin_ids <= {user.pk}


def _audit(user: User, **kwargs) -> None:
    # Platform staff have no tenant and so no tenant audit log; the Django
    # admin's own history records what is done to them.
    if user.tenant_id is not None:
        audit_record(tenant_id=user.tenant_id, target=user, **kwargs)


@transaction.atomic
def user_role_change(*, user: User, role: str, actor=None, client_ip: str | None = None) -> User:
    """Give `user` another role; the tenant's last active admin cannot be demoted.

    An inactive user's role may be changed: it grants nothing until the user
    is reactivated, and inactive admins do not count as the tenant's admins.
    """
    if role not in Role.values:
        raise ValidationError({"role": [f"Unknown role {role!r}; choose one of: {', '.join(Role.values)}."]})
    locked, admin_ids = _lock_for_admin_change(user=user, actor=actor)
    if locked.role == role:
        return locked
    if role != Role.ADMIN and _is_last_active_admin(locked, admin_ids):
        raise ValidationError(LAST_ADMIN_DEMOTION, code="last_admin")
    previous = locked.role
    locked.role = role
    locked.save(update_fields=["role"])
    _audit(
        locked,
        action="user.role_change",
        actor=actor,
        changes={"role": {"from": previous, "to": role}},
        client_ip=client_ip,
    )
    return locked


@transaction.atomic
def user_deactivate(*, user: User, actor=None, client_ip: str | None = None) -> User:
    """Soft-deactivate `user` and end all their sessions; their data stays.

    Deactivating a user who is already inactive changes nothing and succeeds.
    """
    if actor is not None and actor.pk == user.pk:
        raise ValidationError(SELF_DEACTIVATION, code="self_deactivation")
    locked, admin_ids = _lock_for_admin_change(user=user, actor=actor)
    if not locked.is_active:
        return locked
    if _is_last_active_admin(locked, admin_ids):
        raise ValidationError(LAST_ADMIN_DEACTIVATION, code="last_admin")
    locked.is_active = False
    # Inactive users are already refused by authentication; the bump also
    # keeps their old tokens dead if they are reactivated later.
    locked.token_version += 1
    locked.save(update_fields=["is_active", "token_version"])
    _audit(
        locked,
        action="user.deactivate",
        actor=actor,
        changes={"is_active": {"from": True, "to": False}},
        client_ip=client_ip,
    )
    return locked


@transaction.atomic
def user_reactivate(*, user: User, actor=None, client_ip: str | None = None) -> User:
    """Let a deactivated user log in again (with new tokens only)."""
    locked = User.objects.select_for_update().get(pk=user.pk)
    if locked.is_active:
        return locked
    locked.is_active = True
    locked.save(update_fields=["is_active"])
    _audit(
        locked,
        action="user.reactivate",
        actor=actor,
        changes={"is_active": {"from": False, "to": True}},
        client_ip=client_ip,
    )
    return locked


@transaction.atomic
def user_update(*, user: User, full_name: str | None = None, actor=None, client_ip: str | None = None) -> User:
    """An admin changes another user's name (email, role and activity have their own rules)."""
    locked = User.objects.select_for_update().get(pk=user.pk)
    if full_name is None or full_name.strip() == locked.full_name:
        return locked
    changes = {"full_name": {"from": locked.full_name, "to": full_name.strip()}}
    locked.full_name = full_name.strip()
    locked.save(update_fields=["full_name"])
    _audit(locked, action="user.update", actor=actor, changes=changes, client_ip=client_ip)
    return locked


@transaction.atomic
def user_profile_update(
    *,
    user: User,
    full_name: str | None = None,
    email: str | None = None,
    current_password: str | None = None,
    client_ip: str | None = None,
) -> User:
    """The caller changes their own name or email; an email change needs the current password.

    An email that differs from the stored one only in case is no change.
    `current_password` is only checked when the email changes.
    """
    changes: dict[str, dict[str, str]] = {}
    update_fields: list[str] = []
    if email is not None:
        new_email = normalize_email(email)
        if new_email != user.email:
            if not current_password:
                raise ValidationError({"current_password": [CURRENT_PASSWORD_REQUIRED]})
            if not user.check_password(current_password):
                raise ValidationError(
                    {"current_password": [ValidationError(WRONG_CURRENT_PASSWORD, code="password_incorrect")]}
                )
            if email_errors := _email_errors(new_email, exclude_pk=user.pk):
                raise ValidationError({"email": email_errors})
            changes["email"] = {"from": user.email, "to": new_email}
            user.email = new_email
            update_fields.append("email")
    if full_name is not None and full_name.strip() != user.full_name:
        changes["full_name"] = {"from": user.full_name, "to": full_name.strip()}
        user.full_name = full_name.strip()
        update_fields.append("full_name")
    if not update_fields:
        return user
    _save_unique_email(user, update_fields=update_fields)
    _audit(
        user,
        action="user.email_change" if "email" in changes else "user.profile_update",
        actor=user,
        changes=changes,
        client_ip=client_ip,
    )
    return user


@transaction.atomic
def user_password_change(*, user: User, current_password: str, new_password: str, client_ip: str | None = None) -> User:
    """The caller sets a new password; every token issued before stops working."""
    if not user.check_password(current_password):
        raise ValidationError(
            {"current_password": [ValidationError(WRONG_CURRENT_PASSWORD, code="password_incorrect")]}
        )
    if new_password == current_password:
        raise ValidationError({"new_password": [SAME_PASSWORD]})
    try:
        validate_password(new_password, user)
    except ValidationError as exc:
        raise ValidationError({"new_password": exc.messages}) from None
    user.set_password(new_password)  # bumps token_version: the revocation
    user.save(update_fields=["password", "token_version"])
    _audit(user, action="user.password_change", actor=user, client_ip=client_ip)
    return user
