"""Boundaries at the boundary: every documented limit, tried on both sides of it (issue 12).

Each limit is met through the front door (the API, with the real headers and
bodies), once at the last value the documentation allows and once just past it.
A limit moved by one unit (5 minutes of skew made 50, `<=` made `<`) fails here.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest

from telemetry.api.parsers import MAX_INGEST_BODY_BYTES
from telemetry.api.serializers import MAX_BUCKETS
from telemetry.models import SensorReading
from telemetry.services import MAX_BATCH_SIZE
from telemetry.tests.factories import MachineFactory, SensorFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
INGEST = "/api/v1/ingest"


@pytest.fixture
def sensor(tenant):
    machine = MachineFactory(tenant=tenant, external_id="m1")
    return SensorFactory(machine=machine, key="t", kind="temperature")


@pytest.fixture
def frozen_now(monkeypatch):
    """The ingest service's clock, fixed: the skew boundary is tested to the microsecond."""
    from telemetry import services

    monkeypatch.setattr(services.timezone, "now", lambda: NOW)
    return NOW


def ingest(client, *readings, body=None):
    if body is None:
        body = json.dumps({"readings": list(readings)})
    return client.generic("POST", INGEST, body, content_type="application/json")


def reading(ts: datetime | str, value=20.0):
    return {"machine": "m1", "sensor": "t", "ts": ts if isinstance(ts, str) else ts.isoformat(), "value": value}


class TestIngestFutureSkewOfFiveMinutes:
    @pytest.mark.parametrize(
        "ahead", [timedelta(minutes=4, seconds=59), timedelta(minutes=5)], ids=["4m59s", "exactly-5m"]
    )
    def test_up_to_five_minutes_ahead_is_accepted(self, key_client, sensor, frozen_now, ahead):
        assert ingest(key_client, reading(NOW + ahead)).status_code == 202

    @pytest.mark.parametrize(
        "ahead", [timedelta(minutes=5, microseconds=1), timedelta(minutes=6)], ids=["5m-plus-1us", "6m"]
    )
    def test_further_ahead_is_refused(self, key_client, sensor, frozen_now, ahead):
        response = ingest(key_client, reading(NOW + ahead))
        assert response.status_code == 400
        assert response.json() == {"readings": {"0": {"ts": ["Must not be more than 5 minutes in the future."]}}}

    def test_with_the_real_clock_six_minutes_ahead_is_refused_and_four_accepted(self, key_client, sensor):
        now = datetime.now(UTC)
        assert ingest(key_client, reading(now + timedelta(minutes=4))).status_code == 202
        assert ingest(key_client, reading(now + timedelta(minutes=6))).status_code == 400


class TestIngestEpochFloor:
    def test_the_epoch_itself_is_accepted(self, key_client, sensor):
        assert ingest(key_client, reading("1970-01-01T00:00:00Z")).status_code == 202

    def test_one_microsecond_before_is_refused(self, key_client, sensor):
        response = ingest(key_client, reading("1969-12-31T23:59:59.999999Z"))
        assert response.json() == {"readings": {"0": {"ts": ["Must not be before 1970-01-01T00:00:00Z."]}}}


class TestIngestBatchSize:
    def batch(self, count: int) -> list[dict]:
        return [reading(NOW - timedelta(seconds=i)) for i in range(count)]

    def test_one_and_five_thousand_are_accepted(self, key_client, sensor):
        assert ingest(key_client, *self.batch(1)).json() == {"accepted": 1}
        assert ingest(key_client, *self.batch(MAX_BATCH_SIZE)).json() == {"accepted": MAX_BATCH_SIZE}

    def test_none_and_five_thousand_and_one_are_refused(self, key_client, sensor):
        assert ingest(key_client).json() == {"readings": ["A batch needs at least one reading."]}
        response = ingest(key_client, *self.batch(MAX_BATCH_SIZE + 1))
        assert response.json() == {"readings": ["A batch holds at most 5000 readings; this one has 5001."]}
        assert SensorReading.objects.count() == 0


class TestIngestBodyLimit:
    def test_a_body_of_exactly_the_limit_is_read(self, key_client, sensor):
        body = json.dumps({"readings": [reading(NOW)]}).ljust(MAX_INGEST_BODY_BYTES)
        assert len(body) == MAX_INGEST_BODY_BYTES
        assert ingest(key_client, body=body).status_code == 202

    def test_one_byte_more_is_413(self, key_client, sensor):
        body = json.dumps({"readings": [reading(NOW)]}).ljust(MAX_INGEST_BODY_BYTES + 1)
        assert ingest(key_client, body=body).status_code == 413


class TestAggregateBucketCount:
    def query(self, minutes: int) -> dict:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        end = start + timedelta(minutes=minutes)
        return {"machine": "m1", "sensor": "t", "bucket": "1m", "from": start.isoformat(), "to": end.isoformat()}

    def test_ten_thousand_buckets_are_answered(self, admin_client, sensor):
        assert admin_client.get("/api/v1/sensor-data/aggregate", self.query(MAX_BUCKETS)).status_code == 200

    def test_ten_thousand_and_one_are_refused(self, admin_client, sensor):
        response = admin_client.get("/api/v1/sensor-data/aggregate", self.query(MAX_BUCKETS + 1))
        assert response.status_code == 400
        assert list(response.json()) == ["bucket"]


class TestIngestSlowPathBoundaries:
    """The reading-by-reading check (taken when a batch has a malformed reading) keeps the same limits."""

    def test_exactly_five_minutes_ahead_before_a_malformed_reading_is_not_the_one_named(
        self, key_client, sensor, frozen_now
    ):
        response = ingest(key_client, reading(NOW + timedelta(minutes=5)), reading(NOW, value="x"))
        assert response.json() == {"readings": {"1": {"value": ["Must be a number."]}}}

    def test_timestamps_are_whole_microseconds(self):
        from telemetry.services import _parse_ts

        micros = _parse_ts("2026-03-01T12:00:00.000001Z", 10**18)
        assert type(micros) is int
        assert micros == 1772366400000001
