from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.response import Response
from rest_framework.views import APIView

from core.caller import caller_of
from core.permissions import IsTenantAdmin, NoApiKeyCredentials
from core.serializers import validated_data
from users import selectors, services
from users.api.filters import UserFilter
from users.api.serializers import (
    BAD_CREDENTIALS,
    AccessTokenOutputSerializer,
    PasswordChangeInputSerializer,
    ProfileUpdateInputSerializer,
    TokenObtainInputSerializer,
    TokenPairOutputSerializer,
    TokenRefreshInputSerializer,
    UserCreateInputSerializer,
    UserOutputSerializer,
    UserReactivateInputSerializer,
    UserRoleInputSerializer,
    UserUpdateInputSerializer,
)
from users.authentication import JWTAuthentication
from users.throttles import login_attempt_begin, login_attempt_succeeded
from users.tokens import token_pair_for

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

    @extend_schema(
        summary="Log in", request=TokenObtainInputSerializer, responses={200: TokenPairOutputSerializer}, auth=[]
    )
    def post(self, request):
        data = validated_data(TokenObtainInputSerializer, request.data)
        email, password = data["email"], data["password"]
        attempt = login_attempt_begin(email=email, by=caller_of(request))  # 429 when over a limit
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
        responses={200: AccessTokenOutputSerializer},
        auth=[],
    )
    def post(self, request):
        data = validated_data(TokenRefreshInputSerializer, request.data)
        return Response({"access": data["access"]})


class ProfileView(generics.GenericAPIView):
    """The caller's own user: any role may read it and change their name and email."""

    serializer_class = UserOutputSerializer
    # The current-password throttle (users.throttles, in the service) answers 429: the schema is told.
    extra_error_codes = ("429",)

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
        data = validated_data(ProfileUpdateInputSerializer, request.data)
        user = services.user_profile_update(by=caller_of(request), **data)
        return Response(UserOutputSerializer(user).data)


class PasswordChangeView(generics.GenericAPIView):
    """Set a new password; every earlier token of the caller stops working."""

    serializer_class = PasswordChangeInputSerializer
    # The current-password throttle (users.throttles, in the service) answers 429: the schema is told.
    extra_error_codes = ("429",)

    @extend_schema(
        summary="Change your password",
        request=PasswordChangeInputSerializer,
        responses={200: TokenPairOutputSerializer},
        description="Returns a fresh token pair; all tokens issued before are refused (401) from now on.",
    )
    def post(self, request):
        data = validated_data(PasswordChangeInputSerializer, request.data)
        user = services.user_password_change(by=caller_of(request), **data)
        return Response(token_pair_for(user))


class _TenantUsersEndpoint(generics.GenericAPIView):
    """The caller's tenant's users, for its admins; another tenant's user is a 404."""

    serializer_class = UserOutputSerializer
    permission_classes = [IsTenantAdmin]
    lookup_url_kwarg = "user_id"

    def get_queryset(self):
        return selectors.user_list(tenant_id=caller_of(self.request).tenant_id)


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
        data = validated_data(UserCreateInputSerializer, request.data)
        user = services.user_create(by=caller_of(request), **data)
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
        changes = validated_data(UserUpdateInputSerializer, request.data)
        user = services.user_update(
            by=caller_of(request),
            user=user,
            full_name=changes.get("full_name"),  # `{}` changes nothing
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

    def perform_destroy(self, instance) -> None:
        services.user_deactivate(by=caller_of(self.request), user=instance)


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
        user = services.user_reactivate(by=caller_of(request), user=self.get_object())
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
        data = validated_data(UserRoleInputSerializer, request.data)
        user = services.user_role_change(by=caller_of(request), user=user, role=data["role"])
        return Response(UserOutputSerializer(user).data)
