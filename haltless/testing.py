"""Helpers the tests of every app share (fixtures live in the root conftest.py).

Test modules import helpers from here, never from a conftest or another test module.
"""

from datetime import UTC, datetime

from rest_framework.test import APIClient

from telemetry.models import Sensor
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
