from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apikeys import scopes
from apikeys.models import ApiKey
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


class ApiKeyCreateInputSerializer(StrictSerializer):
    """A new key: a name, optional scopes (default `["ingest", "agent"]`), an optional future expiry."""

    name = serializers.CharField(max_length=ApiKey._meta.get_field("name").max_length)
    scopes = ScopesField(required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyOutputSerializer(serializers.ModelSerializer):
    """A key as lists show it: the prefix, never the secret or its digest."""

    tenant_id = serializers.UUIDField(read_only=True)
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "tenant_id", "created_at", "expires_at", "last_used_at"]
        read_only_fields = fields


class ApiKeyCreatedSerializer(serializers.Serializer):
    """The create response, built from an IssuedApiKey: the only one that carries `key`."""

    id = serializers.UUIDField(source="api_key.id")
    name = serializers.CharField(source="api_key.name")
    key = serializers.CharField(source="secret", help_text="The full key. Shown only in this response.")
    scopes = serializers.ListField(child=serializers.CharField(), source="api_key.scopes")
    tenant_id = serializers.UUIDField(source="api_key.tenant_id")
    created_at = serializers.DateTimeField(source="api_key.created_at")
    prefix = serializers.CharField(source="api_key.prefix")
    expires_at = serializers.DateTimeField(source="api_key.expires_at", allow_null=True)
