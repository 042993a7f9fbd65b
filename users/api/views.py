from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.auth.models import update_last_login
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.http import client_ip
from core.permissions import IsTenantAdmin
from core.tenancy import TenantScopedMixin
from users import services
from users.api.serializers import (
    AccessTokenSerializer,
    PasswordChangeInputSerializer,
    ProfileUpdateInputSerializer,
    TokenObtainInputSerializer,
    TokenPairSerializer,
    TokenRefreshInputSerializer,
    UserCreateInputSerializer,
    UserOutputSerializer,
    UserRoleInputSerializer,
)
from users.models import User
from users.throttling import CurrentPasswordThrottle, LoginAccountThrottle, LoginAddressThrottle
from users.tokens import token_pair_for


def _is_wrong_current_password(exc: DjangoValidationError) -> bool:
    errors = getattr(exc, "error_dict", {}).get("current_password", [])
    return any(error.code == "password_incorrect" for error in errors)


class CurrentPasswordCheckMixin:
    """Throttle repeated wrong `current_password` answers of one user (429)."""

    # The wrong-current-password throttle is checked by hand, so the schema is told.
    extra_error_codes = ("429",)

    def check_current_password_throttle(self, request) -> CurrentPasswordThrottle:
        throttle = CurrentPasswordThrottle()
        if not throttle.allow_request(request, self):
            self.throttled(request, throttle.wait())
        return throttle

    @contextmanager
    def counting_wrong_password(self, throttle: CurrentPasswordThrottle) -> Iterator[None]:
        try:
            yield
        except DjangoValidationError as exc:
            if _is_wrong_current_password(exc):
                throttle.record_failure()
            raise


RULE_VIOLATION = OpenApiResponse(
    description='Validation error `{"field": [...]}`, or a rule violation `{"detail": "..."}` '
    "(self-deactivation, the tenant's last active admin)."
)


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


class ProfileView(CurrentPasswordCheckMixin, generics.GenericAPIView):
    """The caller's own user: any role may read it and change their name and email."""

    serializer_class = UserOutputSerializer

    @extend_schema(responses={200: UserOutputSerializer})
    def get(self, request):
        return Response(UserOutputSerializer(request.user).data)

    @extend_schema(
        request=ProfileUpdateInputSerializer,
        responses={200: UserOutputSerializer},
        description="Change `full_name` and/or `email`. An email change needs the correct `current_password`; "
        "role, tenant and activity cannot be changed here (unknown fields are rejected).",
    )
    def patch(self, request):
        serializer = ProfileUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        throttle = self.check_current_password_throttle(request) if "current_password" in data else None
        if throttle is None:
            user = services.user_profile_update(user=request.user, client_ip=client_ip(request), **data)
        else:
            with self.counting_wrong_password(throttle):
                user = services.user_profile_update(user=request.user, client_ip=client_ip(request), **data)
        return Response(UserOutputSerializer(user).data)


class PasswordChangeView(CurrentPasswordCheckMixin, generics.GenericAPIView):
    """Set a new password; every earlier token of the caller stops working."""

    serializer_class = PasswordChangeInputSerializer

    @extend_schema(
        request=PasswordChangeInputSerializer,
        responses={200: TokenPairSerializer},
        description="Returns a fresh token pair; all tokens issued before are refused (401) from now on.",
    )
    def post(self, request):
        serializer = PasswordChangeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        throttle = self.check_current_password_throttle(request)
        with self.counting_wrong_password(throttle):
            user = services.user_password_change(
                user=request.user, client_ip=client_ip(request), **serializer.validated_data
            )
        return Response(token_pair_for(user))


class _TenantUsersEndpoint(TenantScopedMixin, generics.GenericAPIView):
    """The caller's tenant's users, for its admins; another tenant's user is a 404."""

    queryset = User.objects.order_by("email")
    serializer_class = UserOutputSerializer
    permission_classes = [IsTenantAdmin]
    lookup_url_kwarg = "user_id"


class UserListCreateView(_TenantUsersEndpoint, generics.ListAPIView):
    filterset_fields = ["role", "is_active"]

    @extend_schema(description="All users of the caller's tenant, active and inactive, by email.")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=UserCreateInputSerializer,
        responses={201: UserOutputSerializer},
        description="Create a user in the caller's tenant. `role` defaults to `viewer`. "
        "Emails are unique across all tenants, in any case.",
    )
    def post(self, request):
        serializer = UserCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_create(
            tenant=request.user.tenant,
            actor=request.user,
            client_ip=client_ip(request),
            **serializer.validated_data,
        )
        return Response(UserOutputSerializer(user).data, status=status.HTTP_201_CREATED)


class UserDetailView(_TenantUsersEndpoint, generics.RetrieveDestroyAPIView):
    @extend_schema(
        responses={204: None, 400: RULE_VIOLATION},
        description="Soft-deactivate the user (`is_active=false`): their data stays and all their sessions end "
        "at once. You cannot deactivate yourself, nor the tenant's last active admin. Deactivating an "
        "already inactive user changes nothing (204).",
    )
    def delete(self, request, *args, **kwargs):
        return super().delete(request, *args, **kwargs)

    def perform_destroy(self, instance: User) -> None:
        services.user_deactivate(user=instance, actor=self.request.user, client_ip=client_ip(self.request))


class UserRoleView(_TenantUsersEndpoint):
    @extend_schema(
        request=UserRoleInputSerializer,
        responses={200: UserOutputSerializer, 400: RULE_VIOLATION},
        description="Give the user another role. The tenant's last active admin cannot be demoted. "
        "An inactive user's role may be changed; it takes effect if they are reactivated.",
    )
    def put(self, request, *args, **kwargs):
        user = self.get_object()
        serializer = UserRoleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_role_change(
            user=user, role=serializer.validated_data["role"], actor=request.user, client_ip=client_ip(request)
        )
        return Response(UserOutputSerializer(user).data)
