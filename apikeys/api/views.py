from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response

from apikeys.api.serializers import ApiKeyCreatedSerializer, ApiKeyCreateInputSerializer, ApiKeyOutputSerializer
from apikeys.models import ApiKey
from apikeys.services import ApiKeyAlreadyRevoked, api_key_create, api_key_revoke
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

    def create(self, request, *args, **kwargs):
        payload = ApiKeyCreateInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        issued = api_key_create(
            tenant=request.user.tenant,
            name=payload.validated_data["name"],
            scopes_requested=payload.validated_data.get("scopes"),
            expires_at=payload.validated_data.get("expires_at"),
            created_by=request.user,
            client_ip=client_ip(request),
        )
        response = Response(ApiKeyCreatedSerializer(issued).data, status=status.HTTP_201_CREATED)
        # The plaintext must not linger in any cache between here and the client.
        response["Cache-Control"] = "no-store"
        return response


@extend_schema_view(
    delete=extend_schema(
        summary="Revoke an API key",
        description="Admin only. The key stops working at once (401 afterwards).",
        responses={
            204: OpenApiResponse(description="Revoked."),
            403: OpenApiResponse(description="Not an admin, or called with an API key."),
            404: OpenApiResponse(description="No such key in your tenant, or already revoked."),
        },
    )
)
class ApiKeyRevokeView(TenantScopedMixin, generics.DestroyAPIView):
    queryset = ApiKey.objects.active()
    serializer_class = ApiKeyOutputSerializer  # the object's shape in the schema; the answer is 204
    permission_classes = [IsTenantAdmin]
    lookup_url_kwarg = "key_id"

    def perform_destroy(self, instance: ApiKey) -> None:
        try:
            api_key_revoke(api_key=instance, actor=self.request.user, client_ip=client_ip(self.request))
        except ApiKeyAlreadyRevoked:
            raise Http404 from None  # revoked by a concurrent request
