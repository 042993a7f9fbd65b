"""JWTs that carry the user's token_version, so a bump revokes them all."""

from rest_framework_simplejwt.tokens import RefreshToken

VERSION_CLAIM = "ver"


class UserRefreshToken(RefreshToken):
    @classmethod
    def for_user(cls, user):
        token = super().for_user(user)
        # Copied into every access token derived from this refresh token.
        token[VERSION_CLAIM] = user.token_version
        return token


def token_pair_for(user) -> dict[str, str]:
    refresh = UserRefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}
