from users.models import User


def user_list_for_tenant(*, tenant_id) -> list[User]:
    return list(User.objects.filter(tenant_id=tenant_id).order_by("email"))
