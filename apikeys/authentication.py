"""Authenticate edge agents and integrations by API key.

`Authorization: Bearer hlts_…` or `X-API-Key: hlts_…` (the latter wins when a
request carries both). A malformed key (wrong length, alphabet or checksum)
never reaches the database; a well-formed one costs one indexed query and a
constant-time comparison (see apikeys.selectors), plus a `last_used_at` write
at most once a minute per key.

The order of checks is the contract's, all in `check_api_key`: the secret
(401), revoked, a previous secret past its overlap, expired, disabled (401),
the network allowlist (403), the request rate (429); scopes are the
permission classes' (403), the machine scope the views' (400/404) and the
readings rate ingest's (429). Each check is a small function of its own module
(apikeys.network, apikeys.ratelimit). Only a request that passes the allowlist
counts as a use: `last_used_at`, observed addresses, rate counters.
"""

from django.utils import timezone
from rest_framework import authentication, exceptions

from apikeys import keys, network, ratelimit, selectors, services
from apikeys.models import ApiKey
from core import metrics
from core.auth_schemes import DeclaredAuthScheme, bearer_scheme
from core.caller import Caller, caller_of

INVALID_KEY = "Invalid API key."
EXPIRED_KEY = "API key has expired."
REVOKED_KEY = "API key has been revoked."
ROTATED_KEY = "API key has been rotated; use the new key."
DISABLED_KEY = "API key is disabled."


class ApiKeyPrincipal:
    """What `request.user` is for a request made with an API key (see core.permissions)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    is_api_key = True
    is_user = False
    is_tenant_admin = False
    role = None

    def __init__(
        self, api_key: ApiKey, rate_check: "ratelimit.RequestCheck | None" = None, secret: str = selectors.CURRENT
    ):
        self.api_key = api_key
        self.pk = self.id = api_key.pk
        self.tenant_id = api_key.tenant_id
        self.rate_check = rate_check
        self.secret = secret  # which of the key's secrets authenticated: "current" or "previous"

    @property
    def machine_ids(self) -> list[str] | None:
        """The machines this key may touch (ids), or None for every machine of the tenant."""
        return self.api_key.machine_ids

    @property
    def scopes(self) -> list[str]:
        return list(self.api_key.scopes)

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
            metrics.api_key_auth_failed(reason="invalid")
            raise exceptions.AuthenticationFailed(INVALID_KEY, code="api_key_invalid") from None
    return None  # no key: maybe a JWT, for users.authentication


def check_api_key(request, by: Caller, api_key: ApiKey, secret: str, now) -> "ratelimit.RequestCheck":
    """The contract's order of checks for a key that a secret matched; the first failure answers.

    Scopes and machine scope come later, in the permission gate and the views.
    Only a request that passes the allowlist counts as a use.
    """
    if api_key.is_revoked:
        metrics.api_key_auth_failed(reason="revoked")
        raise exceptions.AuthenticationFailed(REVOKED_KEY, code="api_key_revoked")
    if secret == selectors.PREVIOUS and not api_key.has_live_previous(now):
        metrics.api_key_auth_failed(reason="rotated")
        raise exceptions.AuthenticationFailed(ROTATED_KEY, code="api_key_rotated")
    if api_key.is_expired(now):
        metrics.api_key_auth_failed(reason="expired")
        raise exceptions.AuthenticationFailed(EXPIRED_KEY, code="api_key_expired")
    if api_key.disabled:
        metrics.api_key_auth_failed(reason="disabled")
        raise exceptions.AuthenticationFailed(DISABLED_KEY, code="api_key_disabled")
    address = by.client_ip
    if not network.is_allowed(address, api_key.allowed_cidrs):
        services.api_key_ip_denied(by=Caller.system(tenant_id=api_key.tenant_id, client_ip=address), api_key=api_key)
        metrics.api_key_auth_failed(reason="ip_denied")
        raise exceptions.PermissionDenied(network.DENIED.format(ip=address))
    # Past the allowlist, the request is a use of the key, whatever comes next.
    services.api_key_record_use(api_key=api_key, now=now, client_ip=address, secret=secret)
    check = ratelimit.check_request(api_key, client_ip=address)  # also counts the observed address
    if api_key.has_rate_limit:
        # Read by core.middleware.ResponseHeadersMiddleware, so that every answer carries them.
        request._request.extra_response_headers = ratelimit.headers(check)
    if not check.outcome.allowed:
        raise ratelimit.RateLimited(limit=check.outcome.refused_by, unit="requests", wait=check.outcome.retry_after)
    return check


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        secret = _key_from_request(request)
        if secret is None:
            return None
        if not keys.is_well_formed(secret):
            metrics.api_key_auth_failed(reason="invalid")
            raise exceptions.AuthenticationFailed(INVALID_KEY, code="api_key_invalid")
        found = selectors.api_key_find_by_secret(secret=secret)
        if found is None:
            # The same answer as for a malformed key: nothing tells a guesser how close it came.
            metrics.api_key_auth_failed(reason="invalid")
            raise exceptions.AuthenticationFailed(INVALID_KEY, code="api_key_invalid")
        api_key, which = found
        principal = ApiKeyPrincipal(api_key, secret=which)
        by = caller_of(request, principal=principal)
        principal.rate_check = check_api_key(request, by, api_key, which, timezone.now())
        return principal, api_key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(DeclaredAuthScheme):
    target_class = "apikeys.authentication.ApiKeyAuthentication"
    name = ["apiKeyBearer", "apiKeyHeader"]

    def get_security_requirement(self, auto_schema):
        # Either header will do (a list means OR); endpoints that declare no
        # scope do not accept keys, so the schema does not offer them there.
        if getattr(auto_schema.view, "required_scope", None) is None:
            return []
        return [{name: []} for name in self.name]

    definition = [
        bearer_scheme(bearer_format="hlts_…", description="An API key as `Authorization: Bearer hlts_…`."),
        {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key as `X-API-Key`."},
    ]


class EnrollmentTokenPrincipal:
    """`request.user` at `POST /agent/enroll`: an enrollment token, which can do nothing but enroll."""

    is_authenticated = True
    is_anonymous = False
    is_api_key = False
    is_user = False
    is_tenant_admin = False

    def __init__(self, token):
        self.token = token
        self.pk = self.id = token.pk
        self.tenant_id = token.tenant_id

    def __str__(self) -> str:
        return f"enrollment token {self.token}"


class EnrollmentTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer hlte_…` and nothing else; every refusal says the same."""

    def authenticate(self, request):
        from apikeys import enrollment

        auth = authentication.get_authorization_header(request).split()
        secret = None
        if len(auth) == 2 and auth[0].lower() == b"bearer" and not request.headers.get("X-API-Key"):
            secret = auth[1].decode("ascii", "replace")
        if secret is None:
            raise enrollment.EnrollmentRefused()
        token = enrollment.enrollment_token_find(secret=secret)
        return EnrollmentTokenPrincipal(token), token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="enroll"'


class GithubScannerPrincipal:
    """`request.user` for an alert that GitHub's secret scanning signed."""

    is_authenticated = True
    is_anonymous = False
    is_api_key = False
    is_user = False
    pk = None
    tenant_id = None


class GithubSignatureAuthentication(authentication.BaseAuthentication):
    """GitHub's partner-program signature over the raw body (apikeys.github_scanning)."""

    def authenticate(self, request):
        from apikeys import github_scanning

        if not github_scanning.signature_is_valid(
            body=request.body,
            key_identifier=request.headers.get("Github-Public-Key-Identifier"),
            signature=request.headers.get("Github-Public-Key-Signature"),
        ):
            raise exceptions.AuthenticationFailed(github_scanning.BAD_SIGNATURE, code="github_signature_invalid")
        return GithubScannerPrincipal(), None

    def authenticate_header(self, request) -> str:
        return 'Signature realm="github-secret-scanning"'


class EnrollmentTokenScheme(DeclaredAuthScheme):
    target_class = "apikeys.authentication.EnrollmentTokenAuthentication"
    name = "enrollmentToken"
    definition = bearer_scheme(
        bearer_format="hlte_…",
        description="An enrollment token as `Authorization: Bearer hlte_…` (POST /agent/enroll only).",
    )


class GithubSignatureScheme(DeclaredAuthScheme):
    target_class = "apikeys.authentication.GithubSignatureAuthentication"
    name = "githubSignature"
    definition = {
        "type": "apiKey",
        "in": "header",
        "name": "Github-Public-Key-Signature",
        "description": (
            "Base64 of GitHub's DER-encoded ECDSA P-256/SHA-256 signature of the raw body, with "
            "`Github-Public-Key-Identifier` naming the key (GitHub's secret-scanning partner program)."
        ),
    }
