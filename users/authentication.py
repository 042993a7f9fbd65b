from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication as BaseJWTAuthentication

from core import credentials
from core.auth_schemes import DeclaredAuthScheme, bearer_scheme
from users.tokens import VERSION_CLAIM

TOKEN_REVOKED = "Token has been revoked; log in again."


def check_token_version(user, token) -> None:
    if token.get(VERSION_CLAIM) != user.token_version:
        raise AuthenticationFailed(TOKEN_REVOKED, code="token_revoked")


class JWTAuthentication(BaseJWTAuthentication):
    """simplejwt's authentication plus revocation by token_version (no extra query)."""

    def authenticate(self, request):
        header = self.get_header(request)
        if header is None:
            return None
        raw_token = self.get_raw_token(header)
        if raw_token is None:
            return None
        if credentials.is_api_key_shaped(raw_token):
            return None  # an API key: apikeys.authentication handles it
        return super().authenticate(request)

    def get_user(self, validated_token):
        user = super().get_user(validated_token)  # refuses inactive users
        check_token_version(user, validated_token)
        return user


class JWTAuthenticationScheme(DeclaredAuthScheme):
    target_class = "users.authentication.JWTAuthentication"
    name = "jwtAuth"
    definition = bearer_scheme(bearer_format="JWT", description="A user's access token from POST /api/v1/auth/token.")
