from datetime import datetime
from types import SimpleNamespace

import pytest

from retention import services
from retention.tests.helpers import NOW
from telemetry.models import AgentHeartbeat, SensorReading
from telemetry.tests.factories import MachineFactory, SensorFactory


@pytest.fixture
def frozen_now(monkeypatch) -> datetime:
    """Freeze the clock the retention service reads (only that one)."""
    monkeypatch.setattr(services, "timezone", SimpleNamespace(now=lambda: NOW))
    return NOW


@pytest.fixture
def eager_celery(monkeypatch):
    """Run tasks in-process, as the embedded default does, even if a broker is configured."""
    from haltless.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


@pytest.fixture
def sensor(tenant):
    return SensorFactory(machine=MachineFactory(tenant=tenant))


@pytest.fixture
def other_sensor(other_tenant):
    return SensorFactory(machine=MachineFactory(tenant=other_tenant))


@pytest.fixture
def add_readings():
    """add_readings(sensor, times): one reading of `sensor` at each time."""

    def add(sensor, times) -> None:
        tenant_id = sensor.machine.tenant_id
        SensorReading.objects.bulk_create(
            SensorReading(tenant_id=tenant_id, sensor=sensor, ts=ts, value=20.5) for ts in times
        )

    return add


@pytest.fixture
def add_heartbeats():
    """add_heartbeats(api_key, times): one heartbeat of the key at each time."""

    def add(api_key, times) -> None:
        AgentHeartbeat.objects.bulk_create(
            AgentHeartbeat(tenant_id=api_key.tenant_id, api_key=api_key, received_at=at, hostname="edge-1")
            for at in times
        )

    return add
