from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response

from apikeys import machine_scope, observed
from apikeys.api.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateInputSerializer,
    ApiKeyOutputSerializer,
    ApiKeyUpdateInputSerializer,
    ObservedIpSerializer,
)
from apikeys.models import ApiKey
from apikeys.services import ApiKeyAlreadyRevoked, api_key_create, api_key_revoke, api_key_update
from core.http import client_ip
from core.permissions import IsTenantAdmin, IsTenantAdminForWrites
from core.tenancy import TenantScopedMixin


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
            201: ApiKeyCreatedSerializer,
            400: OpenApiResponse(
                description="Unknown scope or preset, empty scopes or name, past `expires_at`, or an unknown field: "
                '`{"field": ["message", ...]}`.'
            ),
            403: OpenApiResponse(description="Not an admin, or called with an API key."),
        },
    ),
)
class ApiKeyListCreateView(TenantScopedMixin, generics.ListCreateAPIView):
    queryset = ApiKey.objects.active()
    serializer_class = ApiKeyOutputSerializer
    permission_classes = [IsTenantAdminForWrites]

    def list(self, request, *args, **kwargs):
        api_keys = list(self.filter_queryset(self.get_queryset()))
        # Every scoped key's machine names in one query (none when no key is scoped).
        context = {
            **self.get_serializer_context(),
            "machine_names": machine_scope.external_ids(api_key.machine_ids for api_key in api_keys),
        }
        return Response(ApiKeyOutputSerializer(api_keys, many=True, context=context).data)

    def create(self, request, *args, **kwargs):
        payload = ApiKeyCreateInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        issued = api_key_create(
            tenant=request.user.tenant,
            name=data["name"],
            scopes_requested=data.get("scopes"),
            expires_at=data.get("expires_at"),
            machines=data.get("machines"),
            allowed_cidrs=data.get("allowed_cidrs"),
            rate_limit=data.get("rate_limit"),
            created_by=request.user,
            client_ip=client_ip(request),
        )
        response = Response(ApiKeyCreatedSerializer(issued).data, status=status.HTTP_201_CREATED)
        # The plaintext must not linger in any cache between here and the client.
        response["Cache-Control"] = "no-store"
        return response


@extend_schema_view(
    get=extend_schema(summary="An API key", description="Any role. Revoked keys are not found (404)."),
    patch=extend_schema(
        summary="Change an API key",
        description=(
            "Admin only. Any of `name`, `scopes` (as on create), `expires_at`, `machines`, `allowed_cidrs`, "
            "`rate_limit`; only what is given changes (`rate_limit` is replaced as a whole). The secret stays. "
            "Returns the item. Revoked keys are not found (404)."
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
class ApiKeyDetailView(TenantScopedMixin, generics.RetrieveUpdateDestroyAPIView):
    queryset = ApiKey.objects.active().select_related("tenant")
    serializer_class = ApiKeyOutputSerializer
    permission_classes = [IsTenantAdminForWrites]
    lookup_url_kwarg = "key_id"
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def update(self, request, *args, **kwargs):
        api_key = self.get_object()
        payload = ApiKeyUpdateInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        changes = dict(payload.validated_data)
        if "scopes" in changes:
            changes["scopes_requested"] = changes.pop("scopes")
        api_key = api_key_update(api_key=api_key, actor=request.user, client_ip=client_ip(request), **changes)
        return Response(ApiKeyOutputSerializer(api_key, context=self.get_serializer_context()).data)

    def perform_destroy(self, instance: ApiKey) -> None:
        try:
            api_key_revoke(api_key=instance, actor=self.request.user, client_ip=client_ip(self.request))
        except ApiKeyAlreadyRevoked:
            raise Http404 from None  # revoked by a concurrent request


@extend_schema(
    summary="Where an API key is used from",
    description=(
        "Admin only. The addresses of the key's allowed uses over the last 30 days, most recently seen "
        "first, at most 100: IPv4 addresses as they are, IPv6 grouped by /64, each with first and last "
        "seen and a request count. Uses are counted without a database write per request and stored in "
        "batches, so the newest uses of other web processes may take up to a minute to appear when no "
        "Redis is configured. A way to choose `allowed_cidrs`."
    ),
    responses={200: ObservedIpSerializer(many=True)},
)
class ApiKeyObservedIpsView(TenantScopedMixin, generics.GenericAPIView):
    queryset = ApiKey.objects.active()
    serializer_class = ObservedIpSerializer
    permission_classes = [IsTenantAdmin]
    lookup_url_kwarg = "key_id"
    pagination_class = None

    def get(self, request, *args, **kwargs):
        api_key = self.get_object()
        return Response(ObservedIpSerializer(observed.observed_ips(api_key=api_key), many=True).data)
