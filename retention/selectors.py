from datetime import datetime
from uuid import UUID

from telemetry.models import AgentHeartbeat, SensorReading

# The runs listed by the API: enough history to see what happened, bounded.
RUN_LIST_LIMIT = 100


def retention_expired_counts(*, tenant_id: UUID, cutoff: datetime) -> dict[str, int]:
    """What a run with `cutoff` would delete (the dry run): rows strictly older than it."""
    return {
        "readings": SensorReading.objects.filter(tenant_id=tenant_id, ts__lt=cutoff).count(),
        "heartbeats": AgentHeartbeat.objects.filter(tenant_id=tenant_id, received_at__lt=cutoff).count(),
    }
