from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.response import Response
from rest_framework.views import APIView

from core.http import client_ip
from core.permissions import IsTenantAdmin, NoApiKeyCredentials
from core.tenancy import TenantScopedMixin
from users import services
from users.api.filters import UserFilter
from users.api.serializers import (
    BAD_CREDENTIALS,
    AccessTokenSerializer,
    PasswordChangeInputSerializer,
    ProfileUpdateInputSerializer,
    TokenObtainInputSerializer,
    TokenPairSerializer,
    TokenRefreshInputSerializer,
    UserCreateInputSerializer,
    UserOutputSerializer,
    UserReactivateInputSerializer,
    UserRoleInputSerializer,
    UserUpdateInputSerializer,
)
from users.authentication import JWTAuthentication
from users.models import User
from users.throttles import (
    LoginThrottled,
    current_password_attempt_begin,
    current_password_attempt_succeeded,
    login_attempt_begin,
    login_attempt_succeeded,
)
from users.tokens import token_pair_for


def _is_wrong_current_password(exc: DjangoValidationError) -> bool:
    errors = getattr(exc, "error_dict", {}).get("current_password", [])
    return any(error.code == "password_incorrect" for error in errors)


class CurrentPasswordCheckMixin:
    """Throttle wrong `current_password` answers of one user (429): each check is
    counted before it is made, and given back when the password was right."""

    # The wrong-current-password throttle is checked by hand, so the schema is told.
    extra_error_codes = ("429",)

    @contextmanager
    def current_password_throttled(self, request) -> Iterator[None]:
        try:
            hit = current_password_attempt_begin(user_id=request.user.pk)
        except LoginThrottled as exc:
            raise Throttled(wait=exc.wait_seconds) from None
        try:
            yield
        except DjangoValidationError as exc:
            if not _is_wrong_current_password(exc):
                current_password_attempt_succeeded(hit)
            raise
        except BaseException:
            current_password_attempt_succeeded(hit)
            raise
        current_password_attempt_succeeded(hit)


RULE_VIOLATION = OpenApiResponse(
    description='Validation error `{"field": [...]}`, or a rule violation `{"detail": "..."}` '
    "(self-deactivation, the tenant's last active admin)."
)


class _LoginEndpoint(APIView):
    """Open to anyone, yet for users only; credentials travel in the body.

    Of the configured authentications only the non-JWT ones (API keys) run here:
    a request with an API key is refused (403 "requires a user login", or 401 for a
    revoked, expired or invalid key, like anywhere else), while a stale JWT left in a
    client's headers must not stand in the way of logging in again.
    """

    permission_classes = [NoApiKeyCredentials]

    def get_authenticators(self):
        return [auth for auth in super().get_authenticators() if not isinstance(auth, JWTAuthentication)]

    def get_authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class TokenObtainView(_LoginEndpoint):
    """Log in with email and password; failed attempts are throttled (429)."""

    # The login throttles (users.throttles) are applied by hand, so the schema is told.
    extra_error_codes = ("429",)

    @extend_schema(summary="Log in", request=TokenObtainInputSerializer, responses={200: TokenPairSerializer}, auth=[])
    def post(self, request):
        serializer = TokenObtainInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email, password = serializer.validated_data["email"], serializer.validated_data["password"]
        try:
            attempt = login_attempt_begin(email=email, ip=client_ip(request))
        except LoginThrottled as exc:
            raise Throttled(wait=exc.wait_seconds) from None
        user = authenticate(request, email=email, password=password)
        if user is None:
            raise AuthenticationFailed(BAD_CREDENTIALS, code="no_active_account")
        login_attempt_succeeded(attempt)
        update_last_login(None, user)
        return Response(token_pair_for(user), status=status.HTTP_200_OK)


class TokenRefreshView(_LoginEndpoint):
    """Trade a refresh token for a new access token (refused once revoked)."""

    @extend_schema(
        summary="Refresh an access token",
        request=TokenRefreshInputSerializer,
        responses={200: AccessTokenSerializer},
        auth=[],
    )
    def post(self, request):
        serializer = TokenRefreshInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response({"access": serializer.validated_data["access"]})


class ProfileView(CurrentPasswordCheckMixin, generics.GenericAPIView):
    """The caller's own user: any role may read it and change their name and email."""

    serializer_class = UserOutputSerializer

    @extend_schema(summary="Your profile", responses={200: UserOutputSerializer})
    def get(self, request):
        return Response(UserOutputSerializer(request.user).data)

    @extend_schema(
        summary="Change your name or email",
        request=ProfileUpdateInputSerializer,
        responses={200: UserOutputSerializer},
        description="Change `full_name` and/or `email`. An email change needs the correct `current_password`; "
        "role, tenant and activity cannot be changed here (unknown fields are rejected).",
    )
    def patch(self, request):
        serializer = ProfileUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "current_password" not in data:
            user = services.user_profile_update(user=request.user, client_ip=client_ip(request), **data)
        else:
            with self.current_password_throttled(request):
                user = services.user_profile_update(user=request.user, client_ip=client_ip(request), **data)
        return Response(UserOutputSerializer(user).data)


class PasswordChangeView(CurrentPasswordCheckMixin, generics.GenericAPIView):
    """Set a new password; every earlier token of the caller stops working."""

    serializer_class = PasswordChangeInputSerializer

    @extend_schema(
        summary="Change your password",
        request=PasswordChangeInputSerializer,
        responses={200: TokenPairSerializer},
        description="Returns a fresh token pair; all tokens issued before are refused (401) from now on.",
    )
    def post(self, request):
        serializer = PasswordChangeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with self.current_password_throttled(request):
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
    filterset_class = UserFilter

    @extend_schema(summary="List users", description="All users of the caller's tenant, active and inactive, by email.")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Create a user",
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


@extend_schema_view(get=extend_schema(summary="A user"))
class UserDetailView(_TenantUsersEndpoint, generics.RetrieveDestroyAPIView):
    @extend_schema(
        summary="Rename a user",
        request=UserUpdateInputSerializer,
        responses={200: UserOutputSerializer},
        description="Change the user's `full_name` (admin); `{}` changes nothing. Email, role and activity "
        "have their own rules and endpoints.",
    )
    def patch(self, request, *args, **kwargs):
        user = self.get_object()
        serializer = UserUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(
            user=user,
            full_name=serializer.validated_data.get("full_name"),  # `{}` changes nothing
            actor=request.user,
            client_ip=client_ip(request),
        )
        return Response(UserOutputSerializer(user).data)

    @extend_schema(
        summary="Deactivate a user",
        responses={204: None, 400: RULE_VIOLATION},
        description="Soft-deactivate the user (`is_active=false`): their data stays and all their sessions end "
        "at once. You cannot deactivate yourself, nor the tenant's last active admin. Deactivating an "
        "already inactive user changes nothing (204).",
    )
    def delete(self, request, *args, **kwargs):
        return super().delete(request, *args, **kwargs)

    def perform_destroy(self, instance: User) -> None:
        services.user_deactivate(user=instance, actor=self.request.user, client_ip=client_ip(self.request))


class UserReactivateView(_TenantUsersEndpoint):
    @extend_schema(
        summary="Reactivate a user",
        request=UserReactivateInputSerializer,
        responses={200: UserOutputSerializer},
        description="Let a deactivated user log in again (admin); tokens issued before the deactivation stay "
        "revoked. Reactivating an active user changes nothing (200). The body is empty (or `{}`).",
    )
    def post(self, request, *args, **kwargs):
        UserReactivateInputSerializer(data=request.data).is_valid(raise_exception=True)
        user = services.user_reactivate(user=self.get_object(), actor=request.user, client_ip=client_ip(request))
        return Response(UserOutputSerializer(user).data)


class UserRoleView(_TenantUsersEndpoint):
    @extend_schema(
        summary="Change a user's role",
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
