from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from webhooks.models import WebhookDelivery


@extend_schema_serializer(component_name="WebhookDelivery")
class WebhookDeliveryOutputSerializer(serializers.ModelSerializer):
    """One delivery of one event; never the body's signature or the endpoint's secret."""

    error = serializers.CharField(allow_blank=True, help_text="One fixed text for every failure to connect.")

    class Meta:
        model = WebhookDelivery
        fields = ["id", "event_id", "type", "status_code", "attempts", "delivered_at", "error", "status", "created_at"]
        read_only_fields = fields


@extend_schema_serializer(component_name="Redelivered")
class WebhookRedeliveredOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The new delivery.")
    event_id = serializers.UUIDField()
