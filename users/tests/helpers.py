"""URLs and small helpers shared by the users tests."""

from rest_framework.test import APIClient

USERS_URL = "/api/v1/users"
PROFILE_URL = "/api/v1/settings/profile"
CHANGE_PASSWORD_URL = "/api/v1/settings/change-password"
TOKEN_URL = "/api/v1/auth/token"
REFRESH_URL = "/api/v1/auth/token/refresh"


def user_url(user) -> str:
    return f"{USERS_URL}/{user.pk}"


def role_url(user) -> str:
    return f"{USERS_URL}/{user.pk}/role"


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client
