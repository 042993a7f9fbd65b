from datetime import datetime, timedelta

import pytest

from audit.models import AuditEvent
from audit.tests.factories import AuditEventFactory


@pytest.fixture
def event_at():
    """Create an event of `tenant`, then move it to `when` (occurred_at is set on insert)."""

    def make(when: datetime, **fields) -> AuditEvent:
        event = AuditEventFactory(**fields)
        AuditEvent.objects.filter(pk=event.pk).update(occurred_at=when)
        event.refresh_from_db()
        return event

    return make


@pytest.fixture
def base_time() -> datetime:
    return datetime.fromisoformat("2026-03-01T12:00:00+00:00")


@pytest.fixture
def hour() -> timedelta:
    return timedelta(hours=1)
