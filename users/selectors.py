from uuid import UUID

from django.db.models import QuerySet

from users.models import Role, User


def user_list(*, tenant_id: UUID | None) -> QuerySet[User]:
    """The tenant's users, active and inactive, by email (none without a tenant)."""
    return User.objects.for_tenant(tenant_id).order_by("email")


def user_active_admin_count(*, tenant_id: UUID) -> int:
    return User.objects.for_tenant(tenant_id).filter(role=Role.ADMIN, is_active=True).count()
