"""Reading values are bounded per sensor kind; what is stored never breaks a read (issue 12, item 3)."""

import json
import math
from datetime import timedelta

import pytest

from haltless.testing import T0
from settings_app.models import UnitPreference
from telemetry.models import SensorReading
from telemetry.rollups import rollups_build
from telemetry.services import readings_bulk_insert

INGEST_URL = "/api/v1/ingest"
LATEST_URL = "/api/v1/sensor-data/latest"
READINGS_URL = "/api/v1/sensor-data/readings"
AGGREGATE_URL = "/api/v1/sensor-data/aggregate"
pytestmark = pytest.mark.django_db

# (sensor key of the `machine` fixture, low, high, the message), as the contract's Part 2 says.
BOUNDS = [
    ("bearing_temp", -273.15, 5000.0, "Must be between -273.15 and 5000 (°C) for a temperature sensor."),
    ("oil_pressure", -1.01325, 10000.0, "Must be between -1.01325 and 10000 (bar) for a pressure sensor."),
    ("spindle_vib", 0.0, 10000.0, "Must be between 0 and 10000 (mm/s) for a vibration sensor."),
    ("motor_current", -1e6, 1e6, "Must be between -1000000 and 1000000 (A) for a current sensor."),
    ("spindle_speed", -1e6, 1e6, "Must be between -1000000 and 1000000 (rpm) for a speed sensor."),
    ("door_count", -1e12, 1e12, "Must be between -1000000000000 and 1000000000000 (no unit) for a other sensor."),
]
LARGEST_DOUBLE = 1.7976931348623157e308


def ingest(client, *readings):
    body = {"readings": [{"machine": "m1", "ts": "2026-03-01T12:00:00Z", **reading} for reading in readings]}
    return client.generic("POST", INGEST_URL, json.dumps(body), content_type="application/json")


class TestIngestBoundsPerKind:
    @pytest.mark.parametrize(("sensor", "low", "high", "message"), BOUNDS, ids=[b[0] for b in BOUNDS])
    def test_both_bounds_are_accepted(self, key_client, machine, sensor, low, high, message):
        response = ingest(
            key_client,
            {"sensor": sensor, "value": low},
            {"sensor": sensor, "value": high, "ts": "2026-03-01T12:00:01Z"},
        )
        assert response.status_code == 202, response.json()
        assert sorted(SensorReading.objects.values_list("value", flat=True)) == [low, high]

    @pytest.mark.parametrize(("sensor", "low", "high", "message"), BOUNDS, ids=[b[0] for b in BOUNDS])
    def test_the_next_double_beyond_either_bound_is_refused_by_index(
        self, key_client, machine, sensor, low, high, message
    ):
        for beyond in (math.nextafter(low, -math.inf), math.nextafter(high, math.inf)):
            response = ingest(key_client, {"sensor": sensor, "value": 1.0}, {"sensor": sensor, "value": beyond})
            assert response.status_code == 400
            assert response.json() == {"readings": {"1": {"value": [message]}}}
        assert not SensorReading.objects.exists()

    def test_the_largest_double_is_refused(self, key_client, machine):
        response = ingest(key_client, {"sensor": "bearing_temp", "value": LARGEST_DOUBLE})
        assert response.status_code == 400
        assert response.json() == {
            "readings": {"0": {"value": ["Must be between -273.15 and 5000 (°C) for a temperature sensor."]}}
        }

    def test_an_integer_value_is_bounded_too(self, key_client, machine):
        response = ingest(key_client, {"sensor": "spindle_vib", "value": -1})
        assert response.json() == {
            "readings": {"0": {"value": ["Must be between 0 and 10000 (mm/s) for a vibration sensor."]}}
        }

    def test_an_out_of_range_reading_before_a_malformed_one_is_the_one_named(self, key_client, machine):
        response = ingest(
            key_client,
            {"sensor": "bearing_temp", "value": 20.0},
            {"sensor": "bearing_temp", "value": 6000.0, "ts": "2026-03-01T12:00:01Z"},
            {"sensor": "bearing_temp", "value": "hot", "ts": "2026-03-01T12:00:02Z"},
        )
        assert response.json() == {
            "readings": {"1": {"value": ["Must be between -273.15 and 5000 (°C) for a temperature sensor."]}}
        }

    def test_a_malformed_reading_with_a_value_out_of_range_names_both(self, key_client, machine):
        response = ingest(key_client, {"sensor": "bearing_temp", "value": -300.0, "ts": "yesterday"})
        body = response.json()["readings"]["0"]
        assert body["value"] == ["Must be between -273.15 and 5000 (°C) for a temperature sensor."]
        assert set(body) == {"ts", "value"}


@pytest.fixture
def poisoned(machine):
    """Values stored before ingest bounded them: the largest doubles, either sign."""
    sensors = {sensor.key: sensor.pk for sensor in machine.sensors.all()}
    rows = []
    for key in ("bearing_temp", "oil_pressure", "spindle_vib", "door_count"):
        for i, value in enumerate((LARGEST_DOUBLE, -LARGEST_DOUBLE, LARGEST_DOUBLE)):
            rows.append((sensors[key], T0 + timedelta(minutes=i), value))
    readings_bulk_insert(tenant_id=machine.tenant_id, rows=rows)
    # What the rollup beat job does next: it must clamp as the raw aggregates do (T0 is
    # past the raw window, so hourly aggregates of it come from the rollups).
    rollups_build()
    return machine


@pytest.fixture
def imperial_viewer_client(viewer_user, viewer_client):
    UnitPreference.objects.create(user=viewer_user, temperature="fahrenheit", pressure="psi", vibration="in_s")
    return viewer_client


@pytest.fixture
def kpa_viewer_client(viewer_user, viewer_client):
    UnitPreference.objects.create(user=viewer_user, temperature="kelvin", pressure="kpa")
    return viewer_client


class TestStoredValuesNeverBreakReads:
    def test_latest_in_fahrenheit_psi_and_in_s_is_clamped_to_the_kinds_bounds(self, imperial_viewer_client, poisoned):
        response = imperial_viewer_client.get(LATEST_URL, {"machine": "m1"})
        assert response.status_code == 200
        values = {item["sensor"]: item["value"] for item in response.json()}
        assert values == {
            "bearing_temp": pytest.approx(5000 * 9 / 5 + 32),
            "oil_pressure": pytest.approx(10000 * 14.503773773),
            "spindle_vib": pytest.approx(10000 / 25.4),
            "door_count": 1e12,
        }

    def test_readings_in_kpa_are_finite(self, kpa_viewer_client, poisoned):
        response = kpa_viewer_client.get(READINGS_URL, {"machine": "m1", "sensor": "oil_pressure"})
        assert response.status_code == 200
        assert [item["value"] for item in response.json()["results"]] == [1_000_000.0, pytest.approx(-101.325), 1e6]

    def test_an_api_key_gets_the_clamped_canonical_value(self, reader_client, poisoned):
        response = reader_client.get(READINGS_URL, {"machine": "m1", "sensor": "bearing_temp"})
        assert [item["value"] for item in response.json()["results"]] == [5000.0, -273.15, 5000.0]

    @pytest.mark.parametrize("client_name", ["reader_client", "imperial_viewer_client"])
    def test_aggregate_of_the_largest_doubles_answers(self, request, poisoned, client_name):
        client = request.getfixturevalue(client_name)
        params = {"machine": "m1", "sensor": "bearing_temp", "bucket": "1h", "from": "2026-03-01T12:00:00Z"}
        response = client.get(AGGREGATE_URL, {**params, "to": "2026-03-01T13:00:00Z"})
        assert response.status_code == 200
        (bucket,) = response.json()["buckets"]
        to_unit = (lambda c: c) if client_name == "reader_client" else (lambda c: c * 9 / 5 + 32)
        assert bucket["min"] == pytest.approx(to_unit(-273.15))
        assert bucket["max"] == pytest.approx(to_unit(5000.0))
        assert bucket["avg"] == pytest.approx(to_unit((5000.0 * 2 - 273.15) / 3))
        assert bucket["count"] == 3


class TestBoundsAreDocumented:
    def test_the_ingest_schema_states_every_kinds_bounds(self, api_client):
        schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
        value_help = schema["components"]["schemas"]["IngestReadingRequest"]["properties"]["value"]["description"]
        for text in ("-273.15 to 5,000 °C", "-1.01325 to 10,000 bar", "0 to 10,000 mm/s", "±1,000,000", "±1e12"):
            assert text in value_help
