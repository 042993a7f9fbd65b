from datetime import datetime

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from apikeys import machine_scope, network, ratelimit, scopes, selectors, services
from apikeys.models import ApiKey, ObservedIp
from core.serializers import StrictSerializer

_SCOPE_OR_PRESET = {"type": "string", "enum": [*scopes.SCOPES, *scopes.PRESETS]}


@extend_schema_field(
    {
        "oneOf": [{"type": "array", "items": _SCOPE_OR_PRESET}, _SCOPE_OR_PRESET],
        "description": (
            "Scope names, a single preset name, or a list mixing both; expanded and de-duplicated. "
            f"Presets: {', '.join(f'{p} = {v}' for p, v in scopes.PRESETS.items())}. "
            f"Default {scopes.DEFAULT_SCOPES}."
        ),
    }
)
class ScopesField(serializers.Field):
    """A string or a list of strings; which names exist is the service's rule."""

    default_error_messages = {"invalid": "Expected a scope or preset name, or a list of them."}

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if isinstance(data, list) and all(isinstance(item, str) for item in data):
            return data
        self.fail("invalid")

    def to_representation(self, value):
        return value


class _NullableListField(serializers.Field):
    """A list passed on as it came (null allowed by default): what its items may be is the service's rule."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return value


@extend_schema_field(
    {
        "type": "array",
        "nullable": True,
        "items": {"type": "string"},
        "description": (
            "Machine external ids the key is limited to; null = every machine of the tenant. An empty "
            "list, or an id that is not a machine of your tenant, is a 400. Stored by machine id: a machine "
            "re-created under the same external id is not in scope. Out of scope, ingest answers as for an "
            "unknown machine (400) and machine and sensor-data reads 404."
        ),
    }
)
class MachinesField(_NullableListField):
    """Null or a list of strings; which machines exist is the service's rule."""

    default_error_messages = {"invalid": machine_scope.NOT_A_LIST}

    def to_internal_value(self, data):
        if isinstance(data, list) and all(isinstance(item, str) for item in data):
            return data
        self.fail("invalid")


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "example": "10.20.0.0/16"},
        "maxItems": network.MAX_ALLOWED_CIDRS,
        "description": (
            f"IPv4 and IPv6 networks the key may be used from (at most {network.MAX_ALLOWED_CIDRS}); empty = "
            "anywhere. A bare address means /32 or /128; host bits set (`10.0.0.1/8`) or bad notation is a "
            "400. Stored normalised and de-duplicated. An IPv4-mapped IPv6 client matches IPv4 networks. "
            'A use from elsewhere is a 403 `{"detail": "API key is not allowed from <ip>."}`.'
        ),
    }
)
class AllowedCidrsField(_NullableListField):
    default_error_messages = {"invalid": network.NOT_A_LIST}

    def to_internal_value(self, data):
        if isinstance(data, list):
            return data  # entries are checked (with their own messages) by apikeys.network
        self.fail("invalid")


@extend_schema_serializer(component_name="RateLimit")
class RateLimitOutputSerializer(serializers.Serializer):
    """Per-minute limits of one key: null = the tier's cap (see HALTLESS_TIER_RATE_CAPS)."""

    requests_per_minute = serializers.IntegerField(allow_null=True, min_value=1)
    readings_per_minute = serializers.IntegerField(allow_null=True, min_value=1)


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "properties": {
            "requests_per_minute": {"type": "integer", "nullable": True, "minimum": 1},
            "readings_per_minute": {"type": "integer", "nullable": True, "minimum": 1},
        },
        "additionalProperties": False,
        "description": (
            "Per-key limits over a sliding 60-second window; null (or a member left out) = the tier's cap, "
            "above the cap is a 400. Past them: 429 with `Retry-After`. With a limit set, every answer "
            "carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (the request window)."
        ),
    }
)
class RateLimitField(serializers.Field):
    # DRF formats its messages: the braces of the text are escaped.
    default_error_messages = {"invalid": ratelimit.NOT_AN_OBJECT.replace("{", "{{").replace("}", "}}")}

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            return data  # members are checked by apikeys.ratelimit against the tier
        self.fail("invalid")

    def to_representation(self, value):
        return value


class ApiKeyCreateInputSerializer(StrictSerializer):
    """A new key: a name, optional scopes (default `["ingest", "agent"]`), an optional future expiry, restrictions."""

    name = serializers.CharField(max_length=ApiKey._meta.get_field("name").max_length)
    scopes = ScopesField(required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    machines = MachinesField(required=False)
    allowed_cidrs = AllowedCidrsField(required=False)
    rate_limit = RateLimitField(required=False)


class ApiKeyUpdateInputSerializer(StrictSerializer):
    """What PATCH may change; only the fields given change."""

    name = serializers.CharField(max_length=ApiKey._meta.get_field("name").max_length, required=False)
    scopes = ScopesField(required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    machines = MachinesField(required=False)
    allowed_cidrs = AllowedCidrsField(required=False)
    rate_limit = RateLimitField(required=False)
    disabled = serializers.BooleanField(required=False)


def rate_limit_of(api_key: ApiKey) -> dict:
    return {"requests_per_minute": api_key.requests_per_minute, "readings_per_minute": api_key.readings_per_minute}


class _RestrictionsMixin(serializers.Serializer):
    machines = serializers.SerializerMethodField()
    allowed_cidrs = serializers.SerializerMethodField()
    rate_limit = serializers.SerializerMethodField()

    def _api_key(self, obj) -> ApiKey:
        return obj

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_allowed_cidrs(self, obj) -> list[str]:
        return list(self._api_key(obj).allowed_cidrs)

    @extend_schema_field(MachinesField)
    def get_machines(self, obj) -> list[str] | None:
        api_key = self._api_key(obj)
        names = self.context.get("machine_names")
        if names is None:
            names = machine_scope.external_ids([api_key.machine_ids])
        return machine_scope.scope_as_external_ids(api_key.machine_ids, names)

    @extend_schema_field(RateLimitOutputSerializer)
    def get_rate_limit(self, obj) -> dict:
        return rate_limit_of(self._api_key(obj))


@extend_schema_serializer(component_name="ApiKeyRotation")
class ApiKeyRotationOutputSerializer(serializers.Serializer):
    previous_prefix = serializers.CharField()
    previous_valid_until = serializers.DateTimeField()
    previous_last_used_at = serializers.DateTimeField(allow_null=True)


def rotation_of(api_key: ApiKey) -> dict | None:
    """The rotation block: only while the previous secret still works."""
    if not api_key.has_live_previous():
        return None
    return ApiKeyRotationOutputSerializer(api_key).data


class ApiKeyOutputSerializer(_RestrictionsMixin, serializers.ModelSerializer):
    """A key as lists show it: the prefix, never the secret or its digest.

    `policy_violations` needs the tenant's policy in the context (`policy`).
    """

    tenant_id = serializers.UUIDField(read_only=True)
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True)
    status = serializers.SerializerMethodField()
    rotation = serializers.SerializerMethodField()
    policy_violations = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "tenant_id",
            "created_at",
            "expires_at",
            "last_used_at",
            "last_used_ip",
            "machines",
            "allowed_cidrs",
            "rate_limit",
            "status",
            "disabled",
            "exposed_at",
            "rotation",
            "policy_violations",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "enum": ["active", "disabled", "expired"]})
    def get_status(self, obj: ApiKey) -> str:
        return obj.status()

    @extend_schema_field(ApiKeyRotationOutputSerializer(allow_null=True))
    def get_rotation(self, obj: ApiKey) -> dict | None:
        return rotation_of(obj)

    @extend_schema_field(
        {"type": "array", "items": {"type": "string", "enum": ["no_expiry", "lifetime_exceeds_policy"]}}
    )
    def get_policy_violations(self, obj: ApiKey) -> list[str]:
        policy = self.context.get("policy") or selectors.api_key_policy_get(tenant_id=obj.tenant_id)
        return services.policy_violations(policy, obj)


class ApiKeyRotateInputSerializer(StrictSerializer):
    overlap_seconds = serializers.IntegerField(
        min_value=0, max_value=services.MAX_OVERLAP_SECONDS, default=services.DEFAULT_OVERLAP_SECONDS
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeySelfRotateInputSerializer(StrictSerializer):
    overlap_seconds = serializers.IntegerField(
        min_value=services.SELF_ROTATION_MIN_OVERLAP_SECONDS,
        max_value=services.MAX_OVERLAP_SECONDS,
        default=services.DEFAULT_OVERLAP_SECONDS,
    )


@extend_schema_serializer(component_name="ApiKeyRotated")
class ApiKeyRotatedOutputSerializer(ApiKeyOutputSerializer):
    """The rotate response: the item plus `key`, the new secret, shown only here."""

    key = serializers.SerializerMethodField()

    class Meta(ApiKeyOutputSerializer.Meta):
        fields = [*ApiKeyOutputSerializer.Meta.fields, "key"]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "description": "The new secret. Shown only in this response."})
    def get_key(self, obj) -> str:
        return self.context["secret"]


@extend_schema_serializer(component_name="ApiKeySelfRotated")
class ApiKeySelfRotatedOutputSerializer(serializers.Serializer):
    key = serializers.CharField(source="secret", help_text="The new secret. Shown only in this response.")
    key_id = serializers.UUIDField(source="api_key.id")
    previous_valid_until = serializers.DateTimeField(source="api_key.previous_valid_until", allow_null=True)


@extend_schema_serializer(component_name="WhoAmI")
class WhoAmIOutputSerializer(_RestrictionsMixin, serializers.Serializer):
    """GET /agent/whoami, built from the request's ApiKeyPrincipal."""

    key_id = serializers.UUIDField(source="api_key.id")
    name = serializers.CharField(source="api_key.name")
    prefix = serializers.CharField(source="api_key.prefix")
    tenant_id = serializers.UUIDField(source="api_key.tenant_id")
    scopes = serializers.ListField(child=serializers.CharField(), source="api_key.scopes")
    expires_at = serializers.DateTimeField(source="api_key.expires_at", allow_null=True)
    rotation = serializers.SerializerMethodField()
    secret = serializers.ChoiceField(choices=["current", "previous"])
    server_time = serializers.SerializerMethodField()

    def _api_key(self, obj) -> ApiKey:
        return obj.api_key

    @extend_schema_field(ApiKeyRotationOutputSerializer(allow_null=True))
    def get_rotation(self, principal) -> dict | None:
        return rotation_of(principal.api_key)

    def get_server_time(self, principal) -> datetime:
        return serializers.DateTimeField().to_representation(timezone.now())


class BulkRevokeInputSerializer(StrictSerializer):
    ids = serializers.ListField(child=serializers.UUIDField(), required=False, allow_empty=False, max_length=1000)
    created_before = serializers.DateTimeField(required=False)
    unused_since = serializers.DateTimeField(required=False)
    dry_run = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if not any(field in attrs for field in ("ids", "created_before", "unused_since")):
            raise serializers.ValidationError(
                {"non_field_errors": ["Give at least one of ids, created_before, unused_since."]}
            )
        return attrs


class BulkRevokeOutputSerializer(serializers.Serializer):
    revoked = serializers.IntegerField()
    would_revoke = serializers.IntegerField(required=False, help_text="Dry run only.")
    ids = serializers.ListField(child=serializers.UUIDField(), required=False, help_text="Dry run only.")


@extend_schema_serializer(component_name="ApiKeyPolicy")
class ApiKeyPolicyInputSerializer(StrictSerializer):
    max_lifetime_days = serializers.IntegerField(
        min_value=services.POLICY_BOUNDS["max_lifetime_days"][0],
        max_value=services.POLICY_BOUNDS["max_lifetime_days"][1],
        allow_null=True,
        required=False,
    )
    require_expiry = serializers.BooleanField(required=False)
    notify_days_before_expiry = serializers.ListField(
        child=serializers.IntegerField(
            min_value=services.NOTIFY_DAYS_BOUNDS[0], max_value=services.NOTIFY_DAYS_BOUNDS[1]
        ),
        required=False,
        max_length=20,
    )
    notify_unused_after_days = serializers.IntegerField(
        min_value=services.POLICY_BOUNDS["notify_unused_after_days"][0],
        max_value=services.POLICY_BOUNDS["notify_unused_after_days"][1],
        allow_null=True,
        required=False,
    )
    webhook_url = serializers.CharField(allow_null=True, required=False, max_length=2048)
    leaked_key_action = serializers.ChoiceField(choices=["revoke", "notify"], required=False)

    def validate_webhook_url(self, value):
        from webhooks.services import WEBHOOK_URL_SCHEME, webhook_url_scheme_ok

        if value is not None and not webhook_url_scheme_ok(value):
            raise serializers.ValidationError(WEBHOOK_URL_SCHEME)
        return value


class ApiKeyPolicyOutputSerializer(serializers.Serializer):
    max_lifetime_days = serializers.IntegerField(allow_null=True)
    require_expiry = serializers.BooleanField()
    notify_days_before_expiry = serializers.ListField(child=serializers.IntegerField())
    notify_unused_after_days = serializers.IntegerField(allow_null=True)
    webhook_url = serializers.CharField(allow_null=True, help_text="Non-admins see only its origin.")
    leaked_key_action = serializers.ChoiceField(choices=["revoke", "notify"])
    webhook_secret = serializers.CharField(
        required=False, help_text="Only in the answer to the PUT that set a new webhook_url; shown once."
    )


@extend_schema_serializer(component_name="ObservedIp")
class ObservedIpOutputSerializer(serializers.ModelSerializer):
    ip = serializers.CharField(source="network", help_text="An IPv4 address, or an IPv6 /64 network.")

    class Meta:
        model = ObservedIp
        fields = ["ip", "first_seen", "last_seen", "requests"]
        read_only_fields = fields


@extend_schema_serializer(component_name="ApiKeyCreated")
class ApiKeyCreatedOutputSerializer(_RestrictionsMixin, serializers.Serializer):
    """The create response, built from an IssuedApiKey: the only one that carries `key`."""

    id = serializers.UUIDField(source="api_key.id")
    name = serializers.CharField(source="api_key.name")
    key = serializers.CharField(source="secret", help_text="The full key. Shown only in this response.")
    scopes = serializers.ListField(child=serializers.CharField(), source="api_key.scopes")
    tenant_id = serializers.UUIDField(source="api_key.tenant_id")
    created_at = serializers.DateTimeField(source="api_key.created_at")
    prefix = serializers.CharField(source="api_key.prefix")
    expires_at = serializers.DateTimeField(source="api_key.expires_at", allow_null=True)
    allowed_cidrs = serializers.ListField(child=serializers.CharField(), source="api_key.allowed_cidrs")

    def _api_key(self, obj) -> ApiKey:
        return obj.api_key
