from users.models import Role, User


def user_list_for_tenant(*, tenant_id) -> list[User]:
    return list(User.objects.filter(tenant_id=tenant_id).order_by("email"))


def user_active_admin_count(*, tenant_id) -> int:
    return User.objects.filter(tenant_id=tenant_id, role=Role.ADMIN, is_active=True).count()
