from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys import enrollment, machine_scope, selectors
from apikeys.api.enrollment_serializers import (
    EnrolledOutputSerializer,
    EnrollInputSerializer,
    EnrollmentTokenCreatedOutputSerializer,
    EnrollmentTokenCreateInputSerializer,
    EnrollmentTokenDeleteQuerySerializer,
    EnrollmentTokenOutputSerializer,
)
from apikeys.api.views import _no_store
from apikeys.authentication import EnrollmentTokenAuthentication, EnrollmentTokenPrincipal
from core.caller import caller_of
from core.permissions import IsTenantAdmin
from core.serializers import validated_data


@extend_schema_view(
    get=extend_schema(
        summary="List enrollment tokens",
        description="Admin only. The tenant's tokens that are not deleted, newest first; never the token itself.",
    ),
    post=extend_schema(
        summary="Create an enrollment token",
        description=(
            "Admin only. Edge devices exchange it at `POST /agent/enroll` for a key of their own, with the "
            "token's scopes (default `edge_agent`) and machines. The response carries `token` (`hlte_…`) "
            "this once. `expires_at` is required, within 7 days."
        ),
        request=EnrollmentTokenCreateInputSerializer,
        responses={201: EnrollmentTokenCreatedOutputSerializer},
    ),
)
class EnrollmentTokenListCreateView(generics.ListCreateAPIView):
    serializer_class = EnrollmentTokenOutputSerializer
    permission_classes = [IsTenantAdmin]

    def get_queryset(self):
        return selectors.enrollment_token_list(tenant_id=caller_of(self.request).tenant_id)

    def list(self, request, *args, **kwargs):
        tokens = list(self.get_queryset())
        context = {"machine_names": machine_scope.external_ids(token.machine_ids for token in tokens)}
        return Response(EnrollmentTokenOutputSerializer(tokens, many=True, context=context).data)

    def create(self, request, *args, **kwargs):
        data = validated_data(EnrollmentTokenCreateInputSerializer, request.data)
        issued = enrollment.enrollment_token_create(
            by=caller_of(request),
            name=data["name"],
            expires_at=data["expires_at"],
            scopes_requested=data.get("scopes"),
            machines=data.get("machines"),
            max_uses=data["max_uses"],
            key_expires_in_days=data["key_expires_in_days"],
        )
        body = EnrollmentTokenCreatedOutputSerializer(issued.token, context={"secret": issued.secret}).data
        return _no_store(Response(body, status=status.HTTP_201_CREATED))


@extend_schema(
    summary="Delete an enrollment token",
    description=(
        "Admin only. The token enrolls nothing more; keys it enrolled keep working unless "
        "`?revoke_keys=true`, which revokes every one of them."
    ),
    parameters=[EnrollmentTokenDeleteQuerySerializer],
    responses={204: OpenApiResponse(description="Deleted.")},
)
class EnrollmentTokenDetailView(generics.GenericAPIView):
    permission_classes = [IsTenantAdmin]
    lookup_url_kwarg = "token_id"
    serializer_class = EnrollmentTokenOutputSerializer
    http_method_names = ["delete", "options"]

    def get_queryset(self):
        return selectors.enrollment_token_list(tenant_id=caller_of(self.request).tenant_id)

    def delete(self, request, *args, **kwargs):
        query = validated_data(EnrollmentTokenDeleteQuerySerializer, request.query_params)
        enrollment.enrollment_token_delete(
            by=caller_of(request), token=self.get_object(), revoke_keys=query["revoke_keys"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class IsEnrollmentToken(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, EnrollmentTokenPrincipal)


@extend_schema(
    summary="Enroll an edge device",
    description=(
        "With `Authorization: Bearer hlte_…` (an enrollment token) only. Mints the device's own API key, "
        "named `<token name>/<hostname>`, with the token's scopes and machines (or the subset asked for); "
        "the `key` is shown this once. A hostname that already holds a live key from this token → 409, "
        'unless `"replace": true` and that key was never used (a lost answer): then it is revoked and '
        "replaced, and the retry does not count toward `max_uses`. Any refusal of the token (unknown, "
        'malformed, an API key, expired, used up, deleted) → 401 `{"detail": "Invalid enrollment token."}`.'
    ),
    request=EnrollInputSerializer,
    responses={201: EnrolledOutputSerializer},
)
class AgentEnrollView(APIView):
    authentication_classes = [EnrollmentTokenAuthentication]
    permission_classes = [IsEnrollmentToken]

    def permission_denied(self, request, message=None, code=None):
        # Whatever is missing, the answer is the token's 401.
        raise enrollment.EnrollmentRefused()

    def post(self, request):
        data = validated_data(EnrollInputSerializer, request.data)
        enrolled = enrollment.agent_enroll(
            by=caller_of(request),
            hostname=data["hostname"],
            agent_version=data.get("agent_version"),
            machines=data.get("machines"),
            replace=data["replace"],
        )
        api_key = enrolled.api_key
        names = machine_scope.external_ids([api_key.machine_ids])
        body = {
            "key": enrolled.secret,
            "key_id": api_key.pk,
            "name": api_key.name,
            "scopes": api_key.scopes,
            "machines": machine_scope.scope_as_external_ids(api_key.machine_ids, names),
            "expires_at": api_key.expires_at,
            "tenant_id": api_key.tenant_id,
        }
        return _no_store(Response(EnrolledOutputSerializer(body).data, status=status.HTTP_201_CREATED))
