"""A URLconf with endpoints the system check must refuse (see test_checks)."""

from django.urls import include, path
from rest_framework.decorators import api_view
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView
from rest_framework.viewsets import ViewSet


class TypoScopeView(APIView):
    required_scope = "read:machine"

    def get(self, request):
        return Response({})


class UnreachableView(APIView):
    allow_user_login = False

    def get(self, request):
        return Response({})


class FineView(APIView):
    required_scope = "read:sensors"

    def get(self, request):
        return Response({})


class WriteViewSet(ViewSet):
    required_scope = "write:everything"

    def list(self, request):
        return Response([])


@api_view(["GET"])
def plain_function(request):
    return Response({})


router = SimpleRouter()
router.register("things", WriteViewSet, basename="things")

nested = [path("typo", TypoScopeView.as_view()), path("fine", FineView.as_view())]

urlpatterns = [
    path("api/v1/nested/", include(nested)),
    path("api/v1/unreachable", UnreachableView.as_view()),
    path("api/v1/override", FineView.as_view(required_scope="ingestion")),
    path("api/v1/function", plain_function),
    path("api/v1/", include(router.urls)),
]
