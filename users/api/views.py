from django.contrib.auth.models import update_last_login
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from users.api.serializers import (
    AccessTokenSerializer,
    TokenObtainInputSerializer,
    TokenPairSerializer,
    TokenRefreshInputSerializer,
    UserOutputSerializer,
)
from users.throttling import LoginAccountThrottle, LoginAddressThrottle
from users.tokens import token_pair_for


class _LoginEndpoint(APIView):
    """Credentials travel in the body; a 401 still names the scheme to use next."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class TokenObtainView(_LoginEndpoint):
    """Log in with email and password; failed attempts are throttled (429)."""

    throttle_classes = [LoginAddressThrottle, LoginAccountThrottle]

    def check_throttles(self, request):
        self.login_throttles = self.get_throttles()
        for throttle in self.login_throttles:
            if not throttle.allow_request(request, self):
                self.throttled(request, throttle.wait())

    @extend_schema(request=TokenObtainInputSerializer, responses={200: TokenPairSerializer}, auth=[])
    def post(self, request):
        serializer = TokenObtainInputSerializer(data=request.data, context={"request": request})
        try:
            serializer.is_valid(raise_exception=True)
        except AuthenticationFailed:
            for throttle in self.login_throttles:
                throttle.record_failure()
            raise
        user = serializer.validated_data["user"]
        update_last_login(None, user)
        return Response(token_pair_for(user), status=status.HTTP_200_OK)


class TokenRefreshView(_LoginEndpoint):
    """Trade a refresh token for a new access token (refused once revoked)."""

    @extend_schema(request=TokenRefreshInputSerializer, responses={200: AccessTokenSerializer}, auth=[])
    def post(self, request):
        serializer = TokenRefreshInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response({"access": serializer.validated_data["access"]})


class ProfileView(APIView):
    """The caller's own user."""

    @extend_schema(responses={200: UserOutputSerializer})
    def get(self, request):
        return Response(UserOutputSerializer(request.user).data)
