from drf_spectacular.utils import extend_schema
from rest_framework import generics

from audit.api.filters import AuditEventFilter
from audit.api.serializers import AuditEventOutputSerializer
from audit.selectors import audit_event_list
from core.caller import caller_of
from core.pagination import StandardPageNumberPagination
from core.permissions import IsTenantAdmin


@extend_schema(
    summary="List the tenant's audit log",
    description="Who changed what, newest first. Admins only; filter by action, actor, actor type and time.",
)
class AuditEventListView(generics.ListAPIView):
    serializer_class = AuditEventOutputSerializer
    permission_classes = [IsTenantAdmin]
    pagination_class = StandardPageNumberPagination
    filterset_class = AuditEventFilter

    def get_queryset(self):
        return audit_event_list(tenant_id=caller_of(self.request).tenant_id)
