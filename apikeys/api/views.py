from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys import machine_scope, observed, selectors, services
from apikeys.api.events import API_KEY_EVENTS
from apikeys.api.filters import ApiKeyFilter
from apikeys.api.serializers import (
    ApiKeyCreatedOutputSerializer,
    ApiKeyCreateInputSerializer,
    ApiKeyOutputSerializer,
    ApiKeyPolicyInputSerializer,
    ApiKeyPolicyOutputSerializer,
    ApiKeyRotatedOutputSerializer,
    ApiKeyRotateInputSerializer,
    ApiKeySelfRotatedOutputSerializer,
    ApiKeySelfRotateInputSerializer,
    ApiKeyUpdateInputSerializer,
    BulkRevokeInputSerializer,
    BulkRevokeOutputSerializer,
    ObservedIpOutputSerializer,
    WhoAmIOutputSerializer,
)
from apikeys.models import ApiKey
from core.caller import caller_of
from core.permissions import ANY_SCOPE, ApiAccess, IsTenantAdmin, IsTenantAdminForWrites
from core.serializers import validated_data


class _TenantKeysMixin:
    """The caller's tenant's keys that are not revoked (apikeys.selectors)."""

    def get_queryset(self):
        return selectors.api_key_list(tenant_id=caller_of(self.request).tenant_id)


class _PolicyContextMixin(_TenantKeysMixin):
    """Items carry `policy_violations`: load the tenant's policy once per request, not per key."""

    def get_serializer_context(self):
        context = super().get_serializer_context()
        tenant_id = caller_of(self.request).tenant_id
        if tenant_id is not None:
            context["policy"] = selectors.api_key_policy_get(tenant_id=tenant_id)
        return context


def _no_store(response: Response) -> Response:
    # A plaintext secret must not linger in any cache between here and the client.
    response["Cache-Control"] = "no-store"
    return response


@extend_schema_view(
    get=extend_schema(
        summary="List API keys",
        description="The tenant's keys that are not revoked, newest first, with their prefix only. Any role.",
    ),
    post=extend_schema(
        summary="Create an API key",
        description="Admin only. The response carries the full `key`; it is never shown again.",
        request=ApiKeyCreateInputSerializer,
        responses={
            201: ApiKeyCreatedOutputSerializer,
            400: OpenApiResponse(
                description="Unknown scope or preset, empty scopes or name, past `expires_at`, an expiry against "
                'the tenant\'s key policy, or an unknown field: `{"field": ["message", ...]}`.'
            ),
            403: OpenApiResponse(description="Not an admin, or called with an API key."),
        },
    ),
)
class ApiKeyListCreateView(_PolicyContextMixin, generics.ListCreateAPIView):
    serializer_class = ApiKeyOutputSerializer
    permission_classes = [IsTenantAdminForWrites]
    filterset_class = ApiKeyFilter

    def list(self, request, *args, **kwargs):
        api_keys = list(self.filter_queryset(self.get_queryset()))
        # Every scoped key's machine names in one query (none when no key is scoped).
        context = {
            **self.get_serializer_context(),
            "machine_names": machine_scope.external_ids(api_key.machine_ids for api_key in api_keys),
        }
        return Response(ApiKeyOutputSerializer(api_keys, many=True, context=context).data)

    def create(self, request, *args, **kwargs):
        data = validated_data(ApiKeyCreateInputSerializer, request.data)
        issued = services.api_key_create(
            by=caller_of(request),
            name=data["name"],
            scopes_requested=data.get("scopes"),
            expires_at=data.get("expires_at"),
            machines=data.get("machines"),
            allowed_cidrs=data.get("allowed_cidrs"),
            rate_limit=data.get("rate_limit"),
        )
        return _no_store(Response(ApiKeyCreatedOutputSerializer(issued).data, status=status.HTTP_201_CREATED))


@extend_schema_view(
    get=extend_schema(summary="Show an API key", description="Any role. Revoked keys → 404."),
    patch=extend_schema(
        summary="Change an API key",
        description=(
            "Admin only. Any of `name`, `scopes` (as on create), `expires_at`, `disabled`, `machines`, "
            "`allowed_cidrs`, `rate_limit`; only what is given changes (`rate_limit` is replaced as a whole). "
            "The secret stays. A disabled key answers 401 `API key is disabled.` until enabled again. "
            "A new `expires_at` must fit the tenant's key policy. Returns the item. Revoked keys → 404."
        ),
        request=ApiKeyUpdateInputSerializer,
        responses={200: ApiKeyOutputSerializer},
    ),
    delete=extend_schema(
        summary="Revoke an API key",
        description="Admin only. The key stops working at once (401 afterwards).",
        responses={
            204: OpenApiResponse(description="Revoked."),
            403: OpenApiResponse(description="Not an admin, or called with an API key."),
            404: OpenApiResponse(description="No such key in your tenant, or already revoked."),
        },
    ),
)
class ApiKeyDetailView(_PolicyContextMixin, generics.RetrieveUpdateDestroyAPIView):
    serializer_class = ApiKeyOutputSerializer
    permission_classes = [IsTenantAdminForWrites]
    lookup_url_kwarg = "key_id"
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return super().get_queryset().select_related("tenant")  # its tier caps a new rate limit

    def partial_update(self, request, *args, **kwargs):
        api_key = self.get_object()
        data = validated_data(ApiKeyUpdateInputSerializer, request.data)
        values = dict(data)
        if "scopes" in values:
            values["scopes_requested"] = values.pop("scopes")
        api_key = services.api_key_update(by=caller_of(request), api_key=api_key, **values)
        return Response(self.get_serializer(api_key).data)

    def perform_destroy(self, instance: ApiKey) -> None:
        # Revoked by a concurrent request meanwhile: the service's 404.
        services.api_key_revoke(by=caller_of(self.request), api_key=instance)


@extend_schema(
    summary="Rotate an API key",
    description=(
        "Admin only. A new secret (`key`, shown once); the previous one keeps working until "
        "`rotation.previous_valid_until` (now + `overlap_seconds`). At most two secrets are live. Rotating again "
        "while the current secret was never used (a lost answer) replaces that unused secret and leaves the "
        "previous one and its deadline as they were. Expired or disabled key → 409; revoked → 404."
    ),
    request=ApiKeyRotateInputSerializer,
    responses={
        201: ApiKeyRotatedOutputSerializer,
        404: OpenApiResponse(description="No such live key in your tenant."),
        409: OpenApiResponse(description="The key is expired or disabled."),
    },
)
class ApiKeyRotateView(_PolicyContextMixin, generics.GenericAPIView):
    serializer_class = ApiKeyRotatedOutputSerializer
    permission_classes = [IsTenantAdmin]
    lookup_url_kwarg = "key_id"

    def post(self, request, *args, **kwargs):
        payload = validated_data(ApiKeyRotateInputSerializer, request.data)
        api_key = self.get_object()
        options = {"overlap_seconds": payload["overlap_seconds"]}
        if "expires_at" in payload:
            options["expires_at"] = payload["expires_at"]
        issued = services.api_key_rotate(by=caller_of(request), api_key=api_key, **options)
        context = {**self.get_serializer_context(), "secret": issued.secret}
        data = ApiKeyRotatedOutputSerializer(issued.api_key, context=context).data
        return _no_store(Response(data, status=status.HTTP_201_CREATED))


@extend_schema(
    summary="Revoke API keys in bulk",
    description=(
        "Admin only. Revokes every live key of the tenant that matches ALL the given criteria (`unused_since`: "
        "last used, or created when never used, before it). Unknown or other tenants' ids are ignored and not "
        "counted. `dry_run` changes nothing and lists what would go."
    ),
    request=BulkRevokeInputSerializer,
    responses={200: BulkRevokeOutputSerializer},
)
class ApiKeyBulkRevokeView(APIView):
    permission_classes = [IsTenantAdmin]

    def post(self, request):
        data = validated_data(BulkRevokeInputSerializer, request.data)
        result = services.api_key_bulk_revoke(
            by=caller_of(request),
            ids=data.get("ids"),
            created_before=data.get("created_before"),
            unused_since=data.get("unused_since"),
            dry_run=data["dry_run"],
        )
        return Response(result)


def _policy_answer(policy, *, full_url: bool, webhook_secret: str | None = None) -> dict:
    from webhooks.selectors import webhook_endpoint_get
    from webhooks.services import origin_of

    endpoint = webhook_endpoint_get(tenant_id=policy.tenant_id)
    webhook_url = endpoint.url if endpoint is not None else None
    data = {field: getattr(policy, field) for field in services.POLICY_DEFAULTS}
    data["webhook_url"] = webhook_url if full_url else origin_of(webhook_url)
    if webhook_secret:
        data["webhook_secret"] = webhook_secret
    return data


@extend_schema_view(
    get=extend_schema(
        summary="Show the tenant's API key policy",
        description="Any role; non-admins see `webhook_url` as its origin only.",
        responses={200: ApiKeyPolicyOutputSerializer},
    ),
    put=extend_schema(
        summary="Replace the tenant's API key policy",
        description=(
            "Admin only. Omitted fields take their defaults. A max lifetime implies that an expiry is required "
            "(counted from creation or the last rotation). Existing keys are never changed; keys that break the "
            "policy are flagged in `policy_violations`. Setting a new `webhook_url` returns its signing secret "
            "once, as `webhook_secret`. A URL at a refused address → 400."
        ),
        request=ApiKeyPolicyInputSerializer,
        responses={200: ApiKeyPolicyOutputSerializer},
        callbacks=[API_KEY_EVENTS],
    ),
)
class ApiKeyPolicyView(APIView):
    permission_classes = [IsTenantAdminForWrites]

    def get(self, request):
        policy = selectors.api_key_policy_get(tenant_id=caller_of(request).tenant_id)
        return Response(_policy_answer(policy, full_url=request.user.is_tenant_admin))

    def put(self, request):
        data = validated_data(ApiKeyPolicyInputSerializer, request.data)
        policy, secret = services.api_key_policy_update(by=caller_of(request), values=data)
        response = Response(_policy_answer(policy, full_url=True, webhook_secret=secret))
        return _no_store(response) if secret else response


@extend_schema(
    summary="Rotate this API key (self-rotation)",
    description=(
        "API key with scope `agent`, rotating itself. With the current secret: a new secret, the current one "
        "kept for `overlap_seconds` (at least 3600). With the previous secret, within its overlap, while the "
        "current one was never used (the agent lost the answer): the unused current secret is replaced. "
        'Otherwise 403 `{"detail": "Rotate with the current secret of this key."}`. At most 10 per key per '
        "24 hours (429). Emits an `api_key.rotated` webhook."
    ),
    request=ApiKeySelfRotateInputSerializer,
    responses={
        201: ApiKeySelfRotatedOutputSerializer,
        409: OpenApiResponse(description="The key is expired or disabled."),
    },
)
class AgentKeyRotateView(APIView):
    permission_classes = [ApiAccess]
    required_scope = "agent"
    allow_user_login = False

    def post(self, request):
        data = validated_data(ApiKeySelfRotateInputSerializer, request.data)
        issued = services.api_key_self_rotate(by=caller_of(request), overlap_seconds=data["overlap_seconds"])
        return _no_store(Response(ApiKeySelfRotatedOutputSerializer(issued).data, status=status.HTTP_201_CREATED))


@extend_schema(
    summary="Which key is this?",
    description="Any valid API key, whatever its scopes. Says which of the key's secrets was used. A JWT → 403.",
    responses={200: WhoAmIOutputSerializer},
)
class AgentWhoAmIView(APIView):
    permission_classes = [ApiAccess]
    required_scope = ANY_SCOPE
    allow_user_login = False

    def get(self, request):
        return Response(WhoAmIOutputSerializer(request.user).data)


@extend_schema(
    summary="Where an API key is used from",
    description=(
        "Admin only. The addresses of the key's allowed uses over the last 30 days, most recently seen "
        "first, at most 100: IPv4 addresses as they are, IPv6 grouped by /64, each with first and last "
        "seen and a request count. Uses are counted without a database write per request and stored in "
        "batches, so the newest uses of other web processes may take up to a minute to appear when no "
        "Redis is configured. A way to choose `allowed_cidrs`."
    ),
    responses={200: ObservedIpOutputSerializer(many=True)},
)
class ApiKeyObservedIpsView(_TenantKeysMixin, generics.GenericAPIView):
    serializer_class = ObservedIpOutputSerializer
    permission_classes = [IsTenantAdmin]
    lookup_url_kwarg = "key_id"
    pagination_class = None

    def get(self, request, *args, **kwargs):
        api_key = self.get_object()
        return Response(ObservedIpOutputSerializer(observed.observed_ips(api_key=api_key), many=True).data)
