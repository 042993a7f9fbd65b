"""Writes on users. Every state change is audited; no password ever reaches the log.
(The admin page's direct fields, `user_admin_fields_update`: in the admin's own history.)

Rule violations that are not about one input field (self-deactivation, the
last active admin) are raised as a `ValidationError` without a field, with a
`code`; field errors are raised as a dict keyed by field name. The API turns
the first into `{"detail": ...}` and the second into `{"field": [...]}`.
"""

from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from audit.services import audit_record
from core.caller import Caller
from users.models import Role, User, normalize_email
from users.throttles import current_password_attempt_begin, current_password_attempt_succeeded

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
def user_create(*, by: Caller, email: str, password: str, full_name: str = "", role: str = Role.VIEWER) -> User:
    """Create a user in `by`'s tenant after the configured password validators accept the password."""
    email = _validate_new_user(email=email, password=password, full_name=full_name, role=role)
    user = User(tenant_id=by.tenant_id, email=email, full_name=full_name.strip(), role=role)
    user.set_password(password)
    _save_unique_email(user)
    audit_record(
        by=by, action="user.create", target=user, changes={"email": email, "role": role, "full_name": user.full_name}
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
            .for_tenant(user.tenant_id)
            .filter(role=Role.ADMIN, is_active=True)
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


def _audit(user: User, *, by: Caller, **kwargs) -> None:
    # In the user's tenant's log. Platform staff have no tenant and so no tenant
    # audit log; the Django admin's own history records what is done to them.
    if user.tenant_id is not None:
        audit_record(by=by.on_tenant(user.tenant_id), target=user, **kwargs)


@transaction.atomic
def user_role_change(*, by: Caller, user: User, role: str) -> User:
    """Give `user` another role; the tenant's last active admin cannot be demoted.

    An inactive user's role may be changed: it grants nothing until the user
    is reactivated, and inactive admins do not count as the tenant's admins.
    """
    if role not in Role.values:
        raise ValidationError({"role": [f"Unknown role {role!r}; choose one of: {', '.join(Role.values)}."]})
    locked, admin_ids = _lock_for_admin_change(user=user, actor=by.principal)
    if locked.role == role:
        return locked
    if role != Role.ADMIN and _is_last_active_admin(locked, admin_ids):
        raise ValidationError(LAST_ADMIN_DEMOTION, code="last_admin")
    previous = locked.role
    locked.role = role
    locked.save(update_fields=["role"])
    _audit(locked, by=by, action="user.role_change", changes={"role": {"from": previous, "to": role}})
    return locked


@transaction.atomic
def user_deactivate(*, by: Caller, user: User) -> User:
    """Soft-deactivate `user` and end all their sessions; their data stays.

    Deactivating a user who is already inactive changes nothing and succeeds.
    """
    if by.principal is not None and by.principal.pk == user.pk:
        raise ValidationError(SELF_DEACTIVATION, code="self_deactivation")
    locked, admin_ids = _lock_for_admin_change(user=user, actor=by.principal)
    if not locked.is_active:
        return locked
    if _is_last_active_admin(locked, admin_ids):
        raise ValidationError(LAST_ADMIN_DEACTIVATION, code="last_admin")
    locked.is_active = False
    # Inactive users are already refused by authentication; the bump also
    # keeps their old tokens dead if they are reactivated later.
    locked.token_version += 1
    locked.save(update_fields=["is_active", "token_version"])
    _audit(locked, by=by, action="user.deactivate", changes={"is_active": {"from": True, "to": False}})
    return locked


@transaction.atomic
def user_reactivate(*, by: Caller, user: User) -> User:
    """Let a deactivated user log in again (with new tokens only)."""
    locked = User.objects.select_for_update().get(pk=user.pk)
    if locked.is_active:
        return locked
    locked.is_active = True
    locked.save(update_fields=["is_active"])
    _audit(locked, by=by, action="user.reactivate", changes={"is_active": {"from": False, "to": True}})
    return locked


@transaction.atomic
def user_update(*, by: Caller, user: User, full_name: str | None = None) -> User:
    """An admin changes another user's name (email, role and activity have their own rules)."""
    locked = User.objects.select_for_update().get(pk=user.pk)
    if full_name is None or full_name.strip() == locked.full_name:
        return locked
    changes = {"full_name": {"from": locked.full_name, "to": full_name.strip()}}
    locked.full_name = full_name.strip()
    locked.save(update_fields=["full_name"])
    _audit(locked, by=by, action="user.update", changes=changes)
    return locked


def _current_password_checked(user: User, current_password: str) -> None:
    """Check the caller's current password, on its throttle (users.throttles; 429 when over it).

    The check is counted before it is made and given back when the password is right,
    so only wrong answers use up the budget. Outside the write's transaction, so a
    refusal (which rolls the write back) keeps its count.
    """
    hit = current_password_attempt_begin(user_id=user.pk)
    if not user.check_password(current_password):
        raise ValidationError(
            {"current_password": [ValidationError(WRONG_CURRENT_PASSWORD, code="password_incorrect")]}
        )
    current_password_attempt_succeeded(hit)


def user_profile_update(
    *, by: Caller, full_name: str | None = None, email: str | None = None, current_password: str | None = None
) -> User:
    """The caller changes their own name or email; an email change needs the current password.

    An email that differs from the stored one only in case is no change.
    `current_password` is only checked when the email changes, but counts against
    its throttle whenever it is sent (a 429 when over it).
    """
    user = by.user
    new_email = normalize_email(email) if email is not None else user.email
    if new_email != user.email:
        if not current_password:
            if current_password is not None:
                current_password_attempt_succeeded(current_password_attempt_begin(user_id=user.pk))
            raise ValidationError({"current_password": [CURRENT_PASSWORD_REQUIRED]})
        _current_password_checked(user, current_password)
    elif current_password is not None:
        current_password_attempt_succeeded(current_password_attempt_begin(user_id=user.pk))
    return _profile_update(by=by, user=user, full_name=full_name, new_email=new_email)


@transaction.atomic
def _profile_update(*, by: Caller, user: User, full_name: str | None, new_email: str) -> User:
    changes: dict[str, dict[str, str]] = {}
    update_fields: list[str] = []
    if new_email != user.email:
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
    _audit(user, by=by, action="user.email_change" if "email" in changes else "user.profile_update", changes=changes)
    return user


def user_password_change(*, by: Caller, current_password: str, new_password: str) -> User:
    """The caller sets a new password; every token issued before stops working.

    The current password is checked on its throttle (see `_current_password_checked`).
    """
    user = by.user
    _current_password_checked(user, current_password)
    return _password_set(by=by, user=user, current_password=current_password, new_password=new_password)


@transaction.atomic
def _password_set(*, by: Caller, user: User, current_password: str, new_password: str) -> User:
    if new_password == current_password:
        raise ValidationError({"new_password": [SAME_PASSWORD]})
    try:
        validate_password(new_password, user)
    except ValidationError as exc:
        raise ValidationError({"new_password": exc.messages}) from None
    user.set_password(new_password)  # bumps token_version: the revocation
    user.save(update_fields=["password", "token_version"])
    _audit(user, by=by, action="user.password_change")
    return user


# What the Django admin's user page edits directly, besides role and activity (their own services).
ADMIN_EDITED_FIELDS = ("email", "full_name", "is_staff", "is_superuser")


@transaction.atomic
def user_admin_fields_update(*, by: Caller, user: User, changes: dict[str, Any]) -> User:
    """Save the admin page's direct fields of `user` (see ADMIN_EDITED_FIELDS), only those.

    Only the fields given are written, so a concurrent token_version bump (a password
    change, a deactivation) is never written back over. The Django admin's own history
    records these edits, as before; `by` is the admin user acting.
    """
    unknown = sorted(set(changes) - set(ADMIN_EDITED_FIELDS))
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    locked = User.objects.select_for_update().get(pk=user.pk)
    if not changes:
        return locked
    for name, value in changes.items():
        setattr(locked, name, normalize_email(value) if name == "email" else value)
    _save_unique_email(locked, update_fields=list(changes))
    return locked
