from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from apikeys import enrollment, machine_scope
from apikeys.api.serializers import MachinesField, ScopesField
from apikeys.models import EnrollmentToken
from core.serializers import StrictSerializer


class EnrollmentTokenCreateInputSerializer(StrictSerializer):
    name = serializers.CharField(max_length=enrollment.NAME_MAX_LENGTH)
    scopes = ScopesField(required=False)
    machines = MachinesField(required=False)
    max_uses = serializers.IntegerField(
        required=False, default=1, help_text=f"How many devices may enroll, 1 to {enrollment.MAX_USES}."
    )
    expires_at = serializers.DateTimeField(help_text="Required: in the future and within 7 days.")
    key_expires_in_days = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text=f"Lifetime of each minted key, 1 to {enrollment.MAX_KEY_LIFETIME_DAYS} days; null = no expiry.",
    )


@extend_schema_field({"type": "array", "nullable": True, "items": {"type": "string"}})
class _MachineNamesField(serializers.Field):
    def to_representation(self, value):
        return value


class EnrollmentTokenOutputSerializer(serializers.ModelSerializer):
    machines = serializers.SerializerMethodField()
    keys_enrolled = serializers.SerializerMethodField(help_text="Keys it enrolled that are not revoked.")

    class Meta:
        model = EnrollmentToken
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "machines",
            "max_uses",
            "uses",
            "expires_at",
            "key_expires_in_days",
            "keys_enrolled",
            "created_at",
        ]

    @extend_schema_field({"type": "array", "nullable": True, "items": {"type": "string"}})
    def get_machines(self, token) -> list[str] | None:
        names = self.context.get("machine_names")
        if names is None:
            names = machine_scope.external_ids([token.machine_ids])
        return machine_scope.scope_as_external_ids(token.machine_ids, names)

    def get_keys_enrolled(self, token) -> int:
        return getattr(token, "live_keys", 0)


@extend_schema_serializer(component_name="EnrollmentTokenCreated")
class EnrollmentTokenCreatedOutputSerializer(EnrollmentTokenOutputSerializer):
    token = serializers.SerializerMethodField(help_text="The token itself (`hlte_…`): shown this once.")

    class Meta(EnrollmentTokenOutputSerializer.Meta):
        fields = [*EnrollmentTokenOutputSerializer.Meta.fields, "token"]

    def get_token(self, token) -> str:
        return self.context["secret"]


class EnrollInputSerializer(StrictSerializer):
    hostname = serializers.CharField(
        trim_whitespace=False,
        help_text="1 to 63 characters of A-Z, a-z, 0-9, '.' and '-'; compared case-insensitively.",
    )
    agent_version = serializers.CharField(required=False, allow_blank=True, max_length=64)
    machines = MachinesField(required=False, help_text="A subset of the token's machines; default: all of them.")
    replace = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Replace this hostname's key from this token, allowed only if that key was never used.",
    )


@extend_schema_serializer(component_name="Enrolled")
class EnrolledOutputSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The device's API key (`hlts_…`): shown this once.")
    key_id = serializers.UUIDField()
    name = serializers.CharField(help_text="`<token name>/<hostname>`.")
    scopes = serializers.ListField(child=serializers.CharField())
    machines = _MachineNamesField()
    expires_at = serializers.DateTimeField(allow_null=True)
    tenant_id = serializers.UUIDField()


class EnrollmentTokenDeleteQuerySerializer(StrictSerializer):
    revoke_keys = serializers.BooleanField(required=False, default=False)
