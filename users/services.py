from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.services import audit_record
from tenants.models import Tenant
from users.models import Role, User, normalize_email


def _validate_new_user(*, email: str, password: str, full_name: str, role: str) -> str:
    email = normalize_email(email)
    errors: dict[str, list[str]] = {}
    try:
        User._meta.get_field("email").run_validators(email)
    except ValidationError as exc:
        errors["email"] = exc.messages
    if not errors.get("email") and User.objects.filter(email=email).exists():
        errors["email"] = ["A user with this email already exists."]
    if role not in Role.values:
        errors["role"] = [f"Unknown role {role!r}; choose one of: {', '.join(Role.values)}."]
    try:
        validate_password(password, User(email=email, full_name=full_name))
    except ValidationError as exc:
        errors["password"] = exc.messages
    if errors:
        raise ValidationError(errors)
    return email


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
    user.save()
    audit_record(
        tenant_id=tenant.id,
        action="user.create",
        actor=actor,
        target=user,
        changes={"email": email, "role": role, "full_name": user.full_name},
        client_ip=client_ip,
    )
    return user
