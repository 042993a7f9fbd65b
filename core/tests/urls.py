"""A test-only URLconf: the real API plus views that exercise the shared conventions."""

from django.urls import include, path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core import errors
from core.permissions import IsTenantAdmin
from core.serializers import StrictSerializer
from haltless.urls import urlpatterns as real_urlpatterns


class _EchoInput(StrictSerializer):
    name = serializers.CharField()
    id = serializers.CharField(read_only=True)


class StrictEchoView(APIView):
    permission_classes = [IsTenantAdmin]

    def post(self, request):
        serializer = _EchoInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data)


class DomainErrorView(APIView):
    """Raises the domain error named in the path, as a service would."""

    def get(self, request, kind: str):
        raise {
            "not_found": errors.NotFound("No such widget."),
            "conflict": errors.Conflict("The widget is already revoked."),
            "rule": errors.RuleViolation({"size": ["Too big."]}),
            "rule_message": errors.RuleViolation("Widgets cannot be resized."),
            "refused": errors.Refused("Widgets are for admins."),
            "upstream": errors.UpstreamFailed("The widget server answered 500."),
            "unavailable": errors.Unavailable("The broker is down.", retry_after=7),
            "throttled": errors.Throttled("Too many widgets.", retry_after=12, limit="widgets"),
        }[kind]


class BoomView(APIView):
    def get(self, request):
        raise RuntimeError("secret internals: password=hunter2")


urlpatterns = [
    path("api/v1/test/echo", StrictEchoView.as_view()),
    path("api/v1/test/boom", BoomView.as_view()),
    path("api/v1/test/domain-error/<str:kind>", DomainErrorView.as_view()),
    path("", include(real_urlpatterns)),
]

handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
