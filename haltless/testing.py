"""Helpers the tests of every app share (fixtures live in the root conftest.py).

Test modules import helpers from here, never from a conftest or another test module.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import HTTPServer

from django.utils import timezone
from rest_framework.test import APIClient

from telemetry import partitions
from telemetry.models import Sensor, SensorReading
from telemetry.services import readings_bulk_insert
from telemetry.tests.factories import SensorFactory
from users.tokens import token_pair_for

# A fixed instant the telemetry tests write readings around.
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
AUDIT_LOG_URL = "/api/v1/settings/audit-log"
# One sensor of each kind, by key, as the `machine` fixture has them.
SENSOR_KINDS = {
    "bearing_temp": Sensor.Kind.TEMPERATURE,
    "oil_pressure": Sensor.Kind.PRESSURE,
    "spindle_vib": Sensor.Kind.VIBRATION,
    "motor_current": Sensor.Kind.CURRENT,
    "spindle_speed": Sensor.Kind.SPEED,
    "door_count": Sensor.Kind.OTHER,
}


def client_for_user(user) -> APIClient:
    """An API client logged in as `user` with a real access token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_pair_for(user)['access']}")
    return client


def client_for_key(secret: str) -> APIClient:
    """An API client that sends the API key `secret` as a bearer token."""
    return key_header_client(secret, "bearer")


def key_header_client(secret: str, header: str) -> APIClient:
    """A client that sends `secret` in `header`: "bearer" or "x-api-key"."""
    client = APIClient()
    if header == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    else:
        client.credentials(HTTP_X_API_KEY=secret)
    return client


def add_sensors(machine) -> dict[str, Sensor]:
    """One sensor of each kind on `machine` (SENSOR_KINDS)."""
    return {key: SensorFactory(machine=machine, key=key, kind=kind) for key, kind in SENSOR_KINDS.items()}


# --- Readings partitions (PostgreSQL) ---------------------------------------------------------
READINGS_TABLE = SensorReading._meta.db_table


def midnight(days_ago: int) -> datetime:
    """Midnight UTC `days_ago` days before today."""
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


def partition_name_for(ts: datetime) -> str:
    """The readings partition whose window (READINGS_PARTITION_DAYS wide) holds `ts`."""
    return f"{READINGS_TABLE}_p{partitions._window_start(ts.astimezone(UTC).date()):%Y%m%d}"


def readings_of(sensor, times, value: float = 1.0) -> None:
    """Readings of `sensor` at `times`, written as ingest writes them."""
    readings_bulk_insert(tenant_id=sensor.machine.tenant_id, rows=[(sensor.pk, ts, value) for ts in times])


# --- Fake servers (127.0.0.1 only) -------------------------------------------------------------
@contextmanager
def serving(server: HTTPServer) -> Iterator[HTTPServer]:
    """Serve `server` from a daemon thread for the block, then shut it down and close it."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
