from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from core.serializers import StrictSerializer
from users.authentication import check_token_version
from users.models import Role, User
from users.tokens import UserRefreshToken

BAD_CREDENTIALS = "No active account found with the given credentials."


class TokenObtainInputSerializer(StrictSerializer):
    """The login body's shape; the view throttles, then checks the password (users.throttles)."""

    email = serializers.CharField(max_length=254, trim_whitespace=True)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


@extend_schema_serializer(component_name="TokenPair")
class TokenPairOutputSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class TokenRefreshInputSerializer(StrictSerializer):
    refresh = serializers.CharField(max_length=4096)

    def validate(self, attrs):
        try:
            refresh = UserRefreshToken(attrs["refresh"])
        except TokenError as exc:
            raise InvalidToken(str(exc)) from None
        user = User.objects.filter(pk=refresh.get("user_id"), is_active=True).first()
        if user is None:
            raise AuthenticationFailed("No active account found for the given token.", code="no_active_account")
        check_token_version(user, refresh)
        attrs["access"] = str(refresh.access_token)
        return attrs


@extend_schema_serializer(component_name="AccessToken")
class AccessTokenOutputSerializer(serializers.Serializer):
    access = serializers.CharField()


class UserOutputSerializer(serializers.ModelSerializer):
    """A user as the API shows it: never a password hash."""

    class Meta:
        model = User
        fields = ["id", "email", "full_name", "role", "is_active", "date_joined", "last_login"]
        read_only_fields = fields


class UserCreateInputSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, write_only=True)
    full_name = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")
    role = serializers.ChoiceField(choices=Role.choices, required=False, default=Role.VIEWER)


class UserUpdateInputSerializer(StrictSerializer):
    """What an admin may change of another user here; role and activity have their own endpoints."""

    full_name = serializers.CharField(max_length=200, allow_blank=True, required=False)


class UserReactivateInputSerializer(StrictSerializer):
    """No fields: the user is in the path."""


class UserRoleInputSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ProfileUpdateInputSerializer(StrictSerializer):
    """Only name and email; role, tenant and activity are not the caller's to change."""

    full_name = serializers.CharField(max_length=200, allow_blank=True, required=False)
    email = serializers.EmailField(max_length=254, required=False)
    current_password = serializers.CharField(
        max_length=4096, trim_whitespace=False, write_only=True, required=False, help_text="Required to change email."
    )


class PasswordChangeInputSerializer(StrictSerializer):
    current_password = serializers.CharField(max_length=4096, trim_whitespace=False, write_only=True)
    new_password = serializers.CharField(max_length=4096, trim_whitespace=False, write_only=True)
