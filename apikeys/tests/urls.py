"""A test-only URLconf: this app's and the users app's API plus probe endpoints that declare scopes.

The real scope-guarded endpoints live in telemetry; these exercise the gate
(core.permissions.ApiAccess) with the same declarations, independently of it.
Only the apps these tests need are included, so that another app's work in
progress cannot break them.
"""

from django.contrib import admin
from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import IsTenantAdmin


class Probe(APIView):
    """Says who called; makes no query of its own."""

    def get(self, request):
        principal = request.user
        return Response(
            {
                "tenant_id": str(principal.tenant_id),
                "via": "api_key" if getattr(principal, "is_api_key", False) else "user",
            }
        )


class UserOnlyProbe(Probe):
    pass


class MachinesProbe(Probe):
    required_scope = "read:machines"


class SensorsProbe(Probe):
    required_scope = "read:sensors"


class IngestProbe(Probe):
    required_scope = "ingest"
    allow_user_login = False


class AgentProbe(Probe):
    required_scope = "agent"
    allow_user_login = False


class MachinesWriteProbe(Probe):
    """Reads need `read:machines`, writes the stronger `write:machines` (as POST /machines)."""

    required_scope = "read:machines"
    required_write_scope = "write:machines"

    def post(self, request):
        return self.get(request)


class AdminSensorsProbe(Probe):
    required_scope = "read:sensors"
    permission_classes = [IsTenantAdmin]


PROBE = "/api/v1/_probe/"

urlpatterns = [
    path("api/v1/_probe/user-only", UserOnlyProbe.as_view()),
    path("api/v1/_probe/machines", MachinesProbe.as_view()),
    path("api/v1/_probe/sensors", SensorsProbe.as_view()),
    path("api/v1/_probe/ingest", IngestProbe.as_view()),
    path("api/v1/_probe/agent", AgentProbe.as_view()),
    path("api/v1/_probe/admin-sensors", AdminSensorsProbe.as_view()),
    path("api/v1/_probe/machines-write", MachinesWriteProbe.as_view()),
    path("api/v1/", include("users.api.urls")),
    path("api/v1/", include("apikeys.api.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
