from drf_spectacular.utils import extend_schema
from rest_framework import generics

from audit.api.filters import AuditEventFilter
from audit.api.serializers import AuditEventOutputSerializer
from audit.selectors import audit_events
from core.pagination import StandardPageNumberPagination
from core.permissions import IsTenantAdmin
from core.tenancy import TenantScopedMixin


@extend_schema(
    summary="List the tenant's audit log",
    description="Who changed what, newest first. Admins only; filter by action, actor, actor type and time.",
)
class AuditEventListView(TenantScopedMixin, generics.ListAPIView):
    queryset = audit_events()
    serializer_class = AuditEventOutputSerializer
    permission_classes = [IsTenantAdmin]
    pagination_class = StandardPageNumberPagination
    filterset_class = AuditEventFilter
