from datetime import UTC, datetime

from telemetry.models import AgentHeartbeat, SensorReading

# A fixed "now" for the service (see the frozen_now fixture), with microseconds
# so that boundaries one microsecond either side of the cutoff are exact.
NOW = datetime(2025, 6, 1, 12, 0, 0, 500_000, tzinfo=UTC)


def reading_times(tenant_id) -> list[datetime]:
    return list(SensorReading.objects.filter(tenant_id=tenant_id).order_by("ts").values_list("ts", flat=True))


def heartbeat_times(tenant_id) -> list[datetime]:
    return list(
        AgentHeartbeat.objects.filter(tenant_id=tenant_id).order_by("received_at").values_list("received_at", flat=True)
    )
