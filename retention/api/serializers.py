from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from core.serializers import StrictSerializer
from retention.models import RetentionRun


@extend_schema_serializer(component_name="RetentionRunRequest")
class RetentionRunRequestInputSerializer(StrictSerializer):
    """The request takes no fields: the tenant is the caller's, the window its tier's."""


@extend_schema_serializer(component_name="RetentionRunAccepted")
class RetentionRunAcceptedOutputSerializer(serializers.Serializer):
    run_id = serializers.UUIDField(source="id", read_only=True)
    status = serializers.ChoiceField(choices=RetentionRun.Status.choices, read_only=True)


class RetentionRunOutputSerializer(serializers.ModelSerializer):
    rows_deleted = serializers.IntegerField(read_only=True, help_text="readings_deleted + heartbeats_deleted")
    requested_by = serializers.UUIDField(
        source="requested_by_id", read_only=True, allow_null=True, help_text="The user who asked for it, if any."
    )
    error = serializers.SerializerMethodField(help_text="Why the run failed; null unless it failed.")
    cutoffs = serializers.SerializerMethodField(help_text="The cutoff of each data class; null until it starts.")

    class Meta:
        model = RetentionRun
        fields = [
            "id",
            "status",
            "trigger",
            "requested_by",
            "cutoff",
            "cutoffs",
            "retention_days",
            "readings_deleted",
            "heartbeats_deleted",
            "rollups_deleted",
            "rows_deleted",
            "partitions_dropped",
            "created_at",
            "started_at",
            "finished_at",
            "error",
        ]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {k: {"type": "string", "format": "date-time"} for k in ("readings", "heartbeats", "rollups")},
        }
    )
    def get_cutoffs(self, run: RetentionRun) -> dict | None:
        return run.cutoffs or None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_error(self, run: RetentionRun) -> str | None:
        return run.error or None


@extend_schema_serializer(component_name="RetentionPolicy")
class RetentionPolicyInputSerializer(StrictSerializer):
    """Days kept per data class. In a PUT, null (or absent) follows the tier; GET shows the effective days."""

    readings_days = serializers.IntegerField(allow_null=True, required=False, default=None, min_value=1)
    heartbeats_days = serializers.IntegerField(allow_null=True, required=False, default=None, min_value=1)
    rollups_days = serializers.IntegerField(allow_null=True, required=False, default=None, min_value=1)


class _WithFromTo:
    """`from` and `to` are Python keywords: declared by name here, read from starts_at/ends_at."""

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        fields["to"] = fields.pop("to_")
        return fields


class RetentionHoldInputSerializer(_WithFromTo, StrictSerializer):
    reason = serializers.CharField(allow_blank=True, trim_whitespace=True, max_length=2000)
    machines = serializers.ListField(
        child=serializers.CharField(max_length=100), allow_null=True, required=False, default=None, max_length=1000
    )
    from_ = serializers.DateTimeField(help_text="Inclusive.")
    to_ = serializers.DateTimeField(required=False, allow_null=True, default=None, help_text="Exclusive.")


class RetentionHoldOutputSerializer(_WithFromTo, serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    reason = serializers.CharField(read_only=True)
    machines = serializers.SerializerMethodField(help_text="null: every machine; else the machines' external ids.")
    from_ = serializers.DateTimeField(source="starts_at", read_only=True, help_text="Inclusive.")
    to_ = serializers.DateTimeField(source="ends_at", read_only=True, allow_null=True, help_text="Exclusive.")
    created_at = serializers.DateTimeField(read_only=True)
    created_by = serializers.UUIDField(source="created_by_id", read_only=True, allow_null=True)
    released_at = serializers.DateTimeField(read_only=True, allow_null=True)

    @extend_schema_field(serializers.ListField(child=serializers.CharField(), allow_null=True))
    def get_machines(self, hold) -> list[str] | None:
        if hold.all_machines:
            return None
        return sorted(machine.external_id for machine in hold.machines.all())


class RetentionPreviewQuerySerializer(StrictSerializer):
    tier = serializers.CharField(required=False, help_text="A tier to preview (e.g. a planned downgrade).")


class _ClassCounts(serializers.Serializer):
    readings = serializers.IntegerField()
    heartbeats = serializers.IntegerField()
    rollups = serializers.IntegerField()


class _ClassCutoffs(serializers.Serializer):
    readings = serializers.DateTimeField()
    heartbeats = serializers.DateTimeField()
    rollups = serializers.DateTimeField()


class _HeldCounts(serializers.Serializer):
    readings = serializers.IntegerField()


@extend_schema_serializer(component_name="RetentionPreview")
class RetentionPreviewOutputSerializer(serializers.Serializer):
    tier = serializers.CharField()
    cutoffs = _ClassCutoffs()
    would_delete = _ClassCounts()
    held = _HeldCounts(help_text="Readings past their window that a hold keeps.")
    next_scheduled_run = serializers.DateTimeField(allow_null=True)
