"""The webhook events API keys emit, as OpenAPI components: documented once, here.

The service POSTs `{"id", "type", "created_at", "tenant_id", "data"}` to the tenant's
webhook URL (webhooks.services); `data` depends on `type`. The events are described as
the `apiKeyEvents` callback of `PUT /settings/api-key-policy` (the request that sets the
URL), one component per type (`ApiKeyRotatedEvent`, ...) with its `data`
(`ApiKeyRotatedEventData`, ...), under the `WebhookEvent` one-of keyed by `type`.
"""

from drf_spectacular.utils import OpenApiCallback, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers


class _KeyData(serializers.Serializer):
    key_id = serializers.UUIDField(help_text="The key's id (`/settings/api-keys/{key_id}`).")
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The first 12 characters of the secret concerned.")


class ApiKeyExpiringEventData(_KeyData):
    expires_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    days_before_expiry = serializers.IntegerField(
        help_text="The policy's threshold this notice is for (the nearest one passed; each is sent once)."
    )


class ApiKeyUnusedEventData(_KeyData):
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="Null: never used.")
    unused_for_days = serializers.IntegerField(help_text="The policy's `notify_unused_after_days`.")


class ApiKeyExposedEventData(_KeyData):
    secret = serializers.ChoiceField(choices=["current", "previous"], help_text="Which of the key's secrets leaked.")
    action = serializers.ChoiceField(
        choices=["revoked", "flagged", "previous_secret_ended"],
        help_text=(
            "`revoked` (the policy's `leaked_key_action: revoke`), `flagged` (`notify`: only `exposed_at` is set), "
            "`previous_secret_ended` (the previous secret ended at once; the key stays)."
        ),
    )


class ApiKeyIpDeniedEventData(_KeyData):
    ip = serializers.IPAddressField(allow_null=True, help_text="The refused client address.")
    allowed_cidrs = serializers.ListField(child=serializers.CharField(), help_text="The key's allowlist.")


class ApiKeyRotatedEventData(_KeyData):
    previous_prefix = serializers.CharField(allow_null=True, help_text="The secret that keeps working meanwhile.")
    previous_valid_until = serializers.DateTimeField(allow_null=True)
    self_rotation = serializers.BooleanField(help_text="True: the key rotated itself (`POST /agent/key/rotate`).")


def _event(event_type: str, data: type[serializers.Serializer], description: str) -> type[serializers.Serializer]:
    name = data.__name__.removesuffix("Data")
    fields = {
        "id": serializers.UUIDField(help_text="The event's id: the same in every attempt and redelivery."),
        "type": serializers.ChoiceField(choices=[event_type]),
        "created_at": serializers.DateTimeField(),
        "tenant_id": serializers.UUIDField(),
        "data": data(),
    }
    return type(name, (serializers.Serializer,), {**fields, "__doc__": description})


EVENTS: dict[str, type[serializers.Serializer]] = {
    "api_key.expiring": _event(
        "api_key.expiring", ApiKeyExpiringEventData, "A live key reaches one of the policy's days before expiry."
    ),
    "api_key.unused": _event(
        "api_key.unused", ApiKeyUnusedEventData, "A live key unused for the policy's `notify_unused_after_days`."
    ),
    "api_key.exposed": _event(
        "api_key.exposed", ApiKeyExposedEventData, "A leak report named a live secret (at most once per key per day)."
    ),
    "api_key.ip_denied": _event(
        "api_key.ip_denied", ApiKeyIpDeniedEventData, "A use from outside the allowlist (at most once a minute)."
    ),
    "api_key.rotated": _event("api_key.rotated", ApiKeyRotatedEventData, "A rotation, by an admin or by the key."),
}

WEBHOOK_EVENT = PolymorphicProxySerializer(
    component_name="WebhookEvent", serializers=EVENTS, resource_type_field_name="type"
)

API_KEY_EVENTS = OpenApiCallback(
    name="apiKeyEvents",
    path="{$request.body#/webhook_url}",
    decorator=extend_schema(
        summary="API key events (webhooks)",
        description=(
            "Sent to the tenant's `webhook_url` from outside any request, signed: `X-Haltless-Signature: "
            't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` with the `webhook_secret`. 6 attempts '
            "(at once, 1 min, 5 min, 30 min, 2 h, 6 h), 5 s each; only a 2xx counts. Each attempt is listed at "
            "`GET /settings/webhook-deliveries`."
        ),
        request=WEBHOOK_EVENT,
        responses={200: OpenApiResponse(description="Any 2xx: delivered.")},
    ),
)
