from rest_framework import serializers

from audit.models import AuditEvent


class AuditEventOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "occurred_at",
            "action",
            "actor_type",
            "actor_id",
            "actor_label",
            "target_type",
            "target_id",
            "target_label",
            "changes",
            "client_ip",
        ]
        read_only_fields = fields
