"""Authenticate edge agents and integrations by API key.

`Authorization: Bearer hlts_…` or `X-API-Key: hlts_…`. One indexed lookup by
digest; a malformed key (bad checksum) never reaches the database.
"""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from apikeys import keys
from apikeys.models import ApiKey

INVALID_KEY = "Invalid API key."
EXPIRED_KEY = "API key has expired."
REVOKED_KEY = "API key has been revoked."
# `last_used_at` is bookkeeping: written at most this often per key, never on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyPrincipal:
    """What `request.user` is for a request made with an API key (see core.permissions)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_api_key = True
    is_tenant_admin = False
    role = None

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.pk = self.id = api_key.pk
        self.tenant_id = api_key.tenant_id

    def has_scope(self, scope: str) -> bool:
        return scope in self.api_key.scopes

    def __str__(self) -> str:
        return f"API key {self.api_key}"


def _key_from_request(request) -> str | None:
    header = request.headers.get("X-API-Key")
    if header:
        return header.strip()
    auth = authentication.get_authorization_header(request).split()
    if len(auth) == 2 and auth[0].lower() == b"bearer" and auth[1].startswith(keys.KEY_PREFIX.encode()):
        try:
            return auth[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(INVALID_KEY) from None
    return None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        raw_key = _key_from_request(request)
        if raw_key is None:
            return None
        if not keys.is_well_formed(raw_key):
            raise exceptions.AuthenticationFailed(INVALID_KEY)
        try:
            api_key = ApiKey.objects.get(key_digest=keys.digest(raw_key))
        except ApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed(INVALID_KEY) from None
        now = timezone.now()
        if api_key.is_revoked:
            raise exceptions.AuthenticationFailed(REVOKED_KEY)
        if api_key.is_expired(now):
            raise exceptions.AuthenticationFailed(EXPIRED_KEY)
        self._touch(api_key, now, request.META.get("REMOTE_ADDR"))
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'

    @staticmethod
    def _touch(api_key: ApiKey, now, ip: str | None) -> None:
        if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
            return
        # Conditional, so concurrent requests of one key write once per minute at most.
        ApiKey.objects.filter(pk=api_key.pk).exclude(last_used_at__gte=now - LAST_USED_RESOLUTION).update(
            last_used_at=now, last_used_ip=ip
        )
        api_key.last_used_at, api_key.last_used_ip = now, ip


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.authentication.ApiKeyAuthentication"
    name = ["apiKeyBearer", "apiKeyHeader"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "hlts_…",
                "description": "An API key as `Authorization: Bearer hlts_…`.",
            },
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key as `X-API-Key`."},
        ]
