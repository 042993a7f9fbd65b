from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import StrictSerializer
from retention.models import RetentionRun


class RetentionRunRequestSerializer(StrictSerializer):
    """The request takes no fields: the tenant is the caller's, the window its tier's."""


class RetentionRunAcceptedSerializer(serializers.Serializer):
    run_id = serializers.UUIDField(source="id", read_only=True)
    status = serializers.ChoiceField(choices=RetentionRun.Status.choices, read_only=True)


class RetentionRunOutputSerializer(serializers.ModelSerializer):
    rows_deleted = serializers.IntegerField(read_only=True, help_text="readings_deleted + heartbeats_deleted")
    requested_by = serializers.UUIDField(
        source="requested_by_id", read_only=True, allow_null=True, help_text="The user who asked for it, if any."
    )
    error = serializers.SerializerMethodField(help_text="Why the run failed; null unless it failed.")

    class Meta:
        model = RetentionRun
        fields = [
            "id",
            "status",
            "trigger",
            "requested_by",
            "cutoff",
            "retention_days",
            "readings_deleted",
            "heartbeats_deleted",
            "rows_deleted",
            "created_at",
            "started_at",
            "finished_at",
            "error",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_error(self, run: RetentionRun) -> str | None:
        return run.error or None
