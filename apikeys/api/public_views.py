"""Endpoints for whoever finds a leaked credential: no login, nothing told back."""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from apikeys import leaks
from apikeys.authentication import GithubScannerPrincipal, GithubSignatureAuthentication
from core import throttling
from core.caller import caller_of
from core.parsers import JSONParser
from core.serializers import StrictSerializer

NOT_A_LIST = f"Expected a list of 1 to {leaks.MAX_CREDENTIALS} strings."
CREDENTIAL_MAX_LENGTH = 256


class AnyContentJSONParser(JSONParser):
    """The body is read as JSON whatever its Content-Type, so a finder's curl never gets a 415."""

    media_type = "*/*"


class PublicReportThrottle(BaseThrottle):
    """Per client address, on the database counters that cannot be raced or evicted (core.throttling)."""

    def allow_request(self, request, view) -> bool:
        rate = throttling.Rate.parse(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["public_report_ip"])
        key = throttling.throttle_key(scope="public_report_ip", ident=caller_of(request).client_ip or "")
        self.hit = throttling.throttle_hit(key=key, rate=rate)
        return self.hit.allowed

    def wait(self) -> int:
        return self.hit.wait_seconds


class CredentialsField(serializers.ListField):
    default_error_messages = {
        "not_a_list": NOT_A_LIST,
        "empty": NOT_A_LIST,
        "min_length": NOT_A_LIST,
        "max_length": NOT_A_LIST,
    }

    def __init__(self, **kwargs):
        child = serializers.CharField(
            trim_whitespace=False,
            allow_blank=True,
            max_length=CREDENTIAL_MAX_LENGTH,
            error_messages={"invalid": NOT_A_LIST, "max_length": NOT_A_LIST, "null": NOT_A_LIST},
        )
        super().__init__(child=child, min_length=1, max_length=leaks.MAX_CREDENTIALS, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, list) and not all(
            isinstance(item, str) and len(item) <= CREDENTIAL_MAX_LENGTH for item in data
        ):
            self.fail("not_a_list")
        return super().to_internal_value(data)


class PublicRevokeInputSerializer(StrictSerializer):
    credentials = CredentialsField(help_text="`hlts_…` API keys and `hlte_…` enrollment tokens, 1 to 1,000.")


@extend_schema(
    summary="Report leaked credentials",
    description=(
        "No authentication. Anyone who finds a Haltless API key (`hlts_…`) or enrollment token (`hlte_…`) "
        "where it does not belong can end it here. The answer is 202 `{}` whatever the credentials were, "
        "so it tells nothing. A live key is revoked (or, if its tenant's policy says `notify`, only "
        "flagged as exposed); a key's previous secret ends at once without revoking the key; a token is "
        "deleted. Throttled per client address (429)."
    ),
    request=PublicRevokeInputSerializer,
    responses={202: inline_serializer("PublicRevokeAccepted", fields={})},
)
class PublicCredentialRevokeView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [AnyContentJSONParser]
    throttle_classes = [PublicReportThrottle]

    def throttled(self, request, wait):
        exc = exceptions.Throttled(wait)
        exc.metrics_limit = "public_revocation"  # core.metrics, counted by core.exceptions
        raise exc

    def post(self, request):
        payload = PublicRevokeInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        leaks.credentials_report_leaked(by=caller_of(request), credentials=payload.validated_data["credentials"])
        return Response({}, status=status.HTTP_202_ACCEPTED)


@extend_schema_serializer(component_name="GithubAlert")
class GithubAlertInputSerializer(serializers.Serializer):
    """One alert; unknown fields are ignored, as GitHub may add some."""

    token = serializers.CharField(trim_whitespace=False, max_length=CREDENTIAL_MAX_LENGTH)
    type = serializers.CharField(max_length=100)
    url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    source = serializers.CharField(required=False, allow_blank=True, max_length=100)


@extend_schema_serializer(component_name="GithubVerdict")
class GithubVerdictOutputSerializer(serializers.Serializer):
    token_hash = serializers.CharField(help_text="SHA-256 (hex) of the token.")
    token_type = serializers.CharField()
    label = serializers.ChoiceField(choices=[leaks.TRUE_POSITIVE, leaks.FALSE_POSITIVE])


class IsGithubScanner(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, GithubScannerPrincipal)


@extend_schema(
    summary="GitHub secret-scanning alerts",
    description=(
        "GitHub's secret-scanning partner program posts the Haltless credentials it found in public, signed "
        "with ECDSA P-256 (`Github-Public-Key-Identifier`, `Github-Public-Key-Signature`) by a key listed in "
        "`GITHUB_SECRET_SCANNING_KEYS`. A missing or bad signature or an unknown key identifier → 401 and "
        "nothing is revoked. Each live credential is acted on as at `POST /public/credentials/revoke`; the "
        "answer labels each token `true_positive` (it was live) or `false_positive`."
    ),
    request=GithubAlertInputSerializer(many=True),
    responses={
        200: GithubVerdictOutputSerializer(many=True),
        400: OpenApiResponse(description="Not a JSON list of 1 to 1,000 alerts."),
    },
)
class GithubSecretScanningView(APIView):
    authentication_classes = [GithubSignatureAuthentication]
    permission_classes = [IsGithubScanner]
    parser_classes = [AnyContentJSONParser]

    def post(self, request):
        data = request.data
        if (
            not isinstance(data, list)
            or not 1 <= len(data) <= leaks.MAX_CREDENTIALS
            or not all(isinstance(item, dict) and isinstance(item.get("token"), str) for item in data)
        ):
            raise serializers.ValidationError({"detail": f"Expected a list of 1 to {leaks.MAX_CREDENTIALS} alerts."})
        alerts = GithubAlertInputSerializer(data=data, many=True)
        alerts.is_valid(raise_exception=True)
        verdicts = leaks.credentials_report_leaked(
            by=caller_of(request), credentials=[alert["token"] for alert in alerts.validated_data]
        )
        body = [
            {"token_hash": verdict.token_hash, "token_type": alert["type"], "label": verdict.label}
            for alert, verdict in zip(alerts.validated_data, verdicts, strict=True)
        ]
        return Response(GithubVerdictOutputSerializer(body, many=True).data)
