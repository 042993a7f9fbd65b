import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.permissions import API_KEY_REQUIRED, missing_scope_message
from haltless.testing import client_for_key
from telemetry.api.parsers import MAX_INGEST_BODY_BYTES
from telemetry.models import SensorReading
from telemetry.services import MAX_BATCH_SIZE

URL = "/api/v1/ingest"
pytestmark = pytest.mark.django_db


def reading(machine="m1", sensor="bearing_temp", ts="2026-03-01T12:00:00Z", value=21.5, **extra):
    return {"machine": machine, "sensor": sensor, "ts": ts, "value": value, **extra}


def batch(count: int, start=datetime(2026, 3, 1, tzinfo=UTC), sensor="bearing_temp") -> list[dict]:
    return [reading(sensor=sensor, ts=(start + timedelta(seconds=i)).isoformat(), value=float(i)) for i in range(count)]


def post(client, readings=None, *, body=None):
    if body is None:
        body = json.dumps({"readings": readings})
    return client.generic("POST", URL, body, content_type="application/json")


class TestIngestAccepts:
    def test_valid_batch_is_stored_and_counted(self, key_client, machine, tenant):
        readings = [
            reading(ts="2026-03-01T12:00:00Z", value=21.5),
            reading(sensor="oil_pressure", ts="2026-03-01T12:00:00.250+00:00", value=3),
        ]
        response = post(key_client, readings)
        assert response.status_code == 202
        assert response.json() == {"accepted": 2}
        stored = list(SensorReading.objects.order_by("ts").values_list("sensor__key", "ts", "value", "tenant_id"))
        assert stored == [
            ("bearing_temp", datetime(2026, 3, 1, 12, 0, tzinfo=UTC), 21.5, tenant.id),
            ("oil_pressure", datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC), 3.0, tenant.id),
        ]

    def test_offsets_are_stored_as_utc(self, key_client, machine):
        response = post(key_client, [reading(ts="2026-03-01T14:30:00.000001+02:30")])
        assert response.status_code == 202
        assert SensorReading.objects.get().ts == datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC)

    def test_nanosecond_timestamps_are_truncated_to_microseconds(self, key_client, machine):
        # Go agents format RFC 3339 with up to nine fractional digits.
        response = post(key_client, [reading(ts="2026-03-01T12:00:00.123456789Z")])
        assert response.status_code == 202
        assert SensorReading.objects.get().ts == datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)

    def test_x_api_key_header_works_too(self, api_key, machine, api_client):
        response = api_client.post(URL, {"readings": [reading()]}, format="json", HTTP_X_API_KEY=api_key.secret)
        assert response.status_code == 202
        assert response.json() == {"accepted": 1}

    def test_trailing_slash_is_served_without_redirect(self, key_client, machine):
        response = key_client.post(URL + "/", {"readings": [reading()]}, format="json")
        assert response.status_code == 202
        assert response.json() == {"accepted": 1}

    def test_resending_a_batch_stores_nothing_twice(self, key_client, machine):
        readings = batch(10)
        assert post(key_client, readings).json() == {"accepted": 10}
        readings[0]["value"] = 999.0  # a resend never overwrites what is stored
        response = post(key_client, readings)
        assert response.status_code == 202
        assert response.json() == {"accepted": 10}
        assert SensorReading.objects.count() == 10
        assert SensorReading.objects.order_by("ts").first().value == 0.0

    def test_a_batch_of_old_and_new_readings_stores_the_new_ones(self, key_client, machine):
        # On PostgreSQL the plain COPY fails on the stored ones; the staged retry skips them.
        assert post(key_client, batch(10)).status_code == 202
        assert post(key_client, batch(10)).status_code == 202  # twice in one transaction: the staging is reused
        response = post(key_client, batch(20))
        assert response.status_code == 202
        assert response.json() == {"accepted": 20}
        assert SensorReading.objects.count() == 20

    def test_within_a_batch_the_first_of_two_equal_readings_is_kept(self, key_client, machine):
        response = post(key_client, [reading(value=1.0), reading(value=2.0)])
        assert response.status_code == 202
        assert response.json() == {"accepted": 2}
        assert list(SensorReading.objects.values_list("value", flat=True)) == [1.0]

    def test_old_readings_are_accepted_as_a_backfill(self, key_client, machine):
        response = post(key_client, [reading(ts="2001-01-01T00:00:00Z")])
        assert response.status_code == 202
        assert SensorReading.objects.get().ts.year == 2001

    def test_slightly_future_ts_within_five_minutes_is_accepted(self, key_client, machine):
        ts = (timezone.now() + timedelta(minutes=4)).isoformat()
        response = post(key_client, [reading(ts=ts)])
        assert response.status_code == 202

    def test_a_full_batch_of_5000_is_accepted(self, key_client, machine):
        response = post(key_client, batch(MAX_BATCH_SIZE))
        assert response.status_code == 202
        assert response.json() == {"accepted": MAX_BATCH_SIZE}
        assert SensorReading.objects.count() == MAX_BATCH_SIZE

    def test_a_full_batch_with_the_longest_ids_pretty_printed_fits_the_body_limit(self, key_client, tenant):
        from telemetry.tests.factories import MachineFactory, SensorFactory

        long_machine = MachineFactory(tenant=tenant, external_id="m" * 100)
        SensorFactory(machine=long_machine, key="s" * 100)
        start = datetime(2026, 3, 1, tzinfo=UTC)
        readings = [
            reading(
                machine="m" * 100,
                sensor="s" * 100,
                ts=(start + timedelta(microseconds=i * 1_000_001)).isoformat(),
                value=-1.2345678901234567e-300,
            )
            for i in range(MAX_BATCH_SIZE)
        ]
        body = json.dumps({"readings": readings}, indent=4)
        assert len(body) <= MAX_INGEST_BODY_BYTES
        response = post(key_client, body=body)
        assert response.status_code == 202
        assert response.json() == {"accepted": MAX_BATCH_SIZE}

    def test_readings_go_to_the_callers_tenant_only(self, key_client, machine, other_machine, tenant):
        assert post(key_client, [reading()]).status_code == 202
        stored = SensorReading.objects.get()
        assert stored.sensor.machine == machine
        assert stored.tenant_id == tenant.id


BAD_READINGS = [
    pytest.param(reading(machine="nope"), {"machine": ["Unknown machine 'nope'."]}, id="unknown-machine"),
    pytest.param(reading(sensor="nope"), {"sensor": ["Unknown sensor 'nope' on machine 'm1'."]}, id="unknown-sensor"),
    pytest.param(reading(value="21.5"), {"value": ["Must be a number."]}, id="string-value"),
    pytest.param(reading(value=True), {"value": ["Must be a number."]}, id="bool-value"),
    pytest.param(reading(value=None), {"value": ["Must be a number."]}, id="null-value"),
    pytest.param(reading(value=[1]), {"value": ["Must be a number."]}, id="list-value"),
    pytest.param(reading(value=10**400), {"value": ["Must be a finite number (not NaN or infinite)."]}, id="huge-int"),
    pytest.param(
        reading(ts="yesterday"),
        {"ts": ["Must be an ISO 8601 datetime with a timezone, e.g. 2026-04-04T10:00:00Z."]},
        id="bad-ts",
    ),
    pytest.param(
        reading(ts=1700000000),
        {"ts": ["Must be an ISO 8601 datetime with a timezone, e.g. 2026-04-04T10:00:00Z."]},
        id="numeric-ts",
    ),
    pytest.param(
        reading(ts="2026-03-01T12:00:00"),
        {"ts": ["Must include a timezone (Z or an offset such as +00:00)."]},
        id="naive-ts",
    ),
    pytest.param(
        reading(ts="0001-01-01T00:00:00+01:00"),
        {"ts": ["Must not be before 1970-01-01T00:00:00Z."]},
        id="ts-before-1970",
    ),
    pytest.param(
        reading(ts="2999-01-01T00:00:00Z"), {"ts": ["Must not be more than 5 minutes in the future."]}, id="far-future"
    ),
    pytest.param(
        {"machine": "m1", "sensor": "bearing_temp", "value": 1.0}, {"ts": ["This field is required."]}, id="missing-ts"
    ),
    pytest.param(reading(unit="celsius"), {"unit": ["Unknown field."]}, id="unknown-field"),
    pytest.param(reading(machine=""), {"machine": ["This field may not be blank."]}, id="blank-machine"),
    pytest.param(reading(sensor=7), {"sensor": ["Must be a string."]}, id="numeric-sensor"),
    pytest.param(
        reading(machine="m\x001"),
        {"machine": ["Must not contain NUL characters or unpaired surrogates."]},
        id="nul-machine",
    ),
    pytest.param(
        reading(sensor="bearing\ud800"),
        {"sensor": ["Must not contain NUL characters or unpaired surrogates."]},
        id="surrogate-sensor",
    ),
    pytest.param(
        "m1,bearing_temp,1.0",
        {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]},
        id="not-an-object",
    ),
]


class TestIngestRejectsBadReadings:
    @pytest.mark.parametrize(("bad", "errors"), BAD_READINGS)
    def test_bad_reading_is_named_by_index_and_nothing_is_stored(self, key_client, machine, bad, errors):
        readings = [*batch(3), bad, *batch(2, start=datetime(2026, 3, 2, tzinfo=UTC))]
        response = post(key_client, readings)
        assert response.status_code == 400
        assert response.json() == {"readings": {"3": errors}}
        assert SensorReading.objects.count() == 0

    def test_another_tenants_machine_is_unknown(self, key_client, machine, other_tenant):
        from telemetry.tests.factories import MachineFactory, SensorFactory

        theirs = MachineFactory(tenant=other_tenant, external_id="their-press")
        SensorFactory(machine=theirs, key="bearing_temp")
        response = post(key_client, [reading(), reading(machine="their-press")])
        assert response.status_code == 400
        assert response.json() == {"readings": {"1": {"machine": ["Unknown machine 'their-press'."]}}}
        assert SensorReading.objects.count() == 0

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
    def test_non_finite_values_are_named_by_index(self, key_client, machine, literal):
        body = (
            '{"readings": [{"machine": "m1", "sensor": "bearing_temp", "ts": "2026-03-01T12:00:00Z", "value": 1},'
            f' {{"machine": "m1", "sensor": "bearing_temp", "ts": "2026-03-01T12:01:00Z", "value": {literal}}}]}}'
        )
        response = post(key_client, body=body)
        assert response.status_code == 400
        assert response.json() == {"readings": {"1": {"value": ["Must be a finite number (not NaN or infinite)."]}}}
        assert SensorReading.objects.count() == 0

    def test_every_problem_of_the_first_bad_reading_is_reported(self, key_client, machine):
        bad = {"machine": "m1", "sensor": "nope", "ts": "soon", "value": "hot", "extra": 1}
        response = post(key_client, [reading(), bad])
        assert response.status_code == 400
        assert response.json() == {
            "readings": {
                "1": {
                    "extra": ["Unknown field."],
                    "ts": ["Must be an ISO 8601 datetime with a timezone, e.g. 2026-04-04T10:00:00Z."],
                    "value": ["Must be a number."],
                    "sensor": ["Unknown sensor 'nope' on machine 'm1'."],
                }
            }
        }

    def test_an_earlier_unknown_sensor_comes_before_a_later_malformed_reading(self, key_client, machine):
        response = post(key_client, [reading(), reading(sensor="nope"), reading(value="x")])
        assert response.json() == {"readings": {"1": {"sensor": ["Unknown sensor 'nope' on machine 'm1'."]}}}

    def test_an_earlier_malformed_reading_comes_before_a_later_unknown_machine(self, key_client, machine):
        response = post(key_client, [reading(value="x"), reading(machine="nope")])
        assert response.json() == {"readings": {"0": {"value": ["Must be a number."]}}}


class TestIngestRejectsBadBatches:
    def test_empty_batch(self, key_client, machine):
        response = post(key_client, [])
        assert response.status_code == 400
        assert response.json() == {"readings": ["A batch needs at least one reading."]}

    def test_more_than_5000_readings(self, key_client, machine):
        response = post(key_client, batch(MAX_BATCH_SIZE + 1))
        assert response.status_code == 400
        assert response.json() == {"readings": ["A batch holds at most 5000 readings; this one has 5001."]}
        assert SensorReading.objects.count() == 0

    def test_readings_must_be_a_list(self, key_client, machine):
        response = post(key_client, body=json.dumps({"readings": reading()}))
        assert response.status_code == 400
        assert response.json() == {"readings": ["Expected a list of readings."]}

    def test_readings_are_required(self, key_client, machine):
        response = post(key_client, body="{}")
        assert response.status_code == 400
        assert response.json() == {"readings": ["This field is required."]}

    def test_an_empty_body_is_missing_readings(self, key_client, machine):
        response = key_client.generic("POST", URL, "", content_type="application/json")
        assert response.status_code == 400
        assert response.json() == {"readings": ["This field is required."]}

    def test_unknown_top_level_field(self, key_client, machine):
        response = post(key_client, body=json.dumps({"readings": [reading()], "agent": "v1"}))
        assert response.status_code == 400
        assert response.json() == {"agent": ["Unknown field."]}
        assert SensorReading.objects.count() == 0

    def test_body_that_is_not_an_object(self, key_client, machine):
        response = post(key_client, body=json.dumps([reading()]))
        assert response.status_code == 400
        assert response.json() == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}

    def test_malformed_json(self, key_client, machine):
        response = post(key_client, body='{"readings": [{"machine": "m1",')
        assert response.status_code == 400
        assert response.json()["detail"].startswith("JSON parse error - ")

    def test_a_body_over_the_limit_is_413_before_parsing(self, key_client, machine):
        body = json.dumps({"readings": [reading()]}).ljust(MAX_INGEST_BODY_BYTES + 1)
        response = post(key_client, body=body)
        assert response.status_code == 413
        assert response.json() == {
            "detail": "The request body is larger than 2560000 bytes; send at most 5000 readings per batch."
        }
        assert SensorReading.objects.count() == 0

    def test_other_content_types_are_415(self, key_client, machine):
        response = key_client.generic("POST", URL, "readings=1", content_type="application/x-www-form-urlencoded")
        assert response.status_code == 415
        assert response.json() == {"detail": 'Unsupported media type "application/x-www-form-urlencoded" in request.'}


class TestIngestAccess:
    def test_jwt_users_are_refused(self, admin_client, machine):
        response = post(admin_client, [reading()])
        assert response.status_code == 403
        assert response.json() == {"detail": API_KEY_REQUIRED}
        assert SensorReading.objects.count() == 0

    def test_a_key_without_the_ingest_scope_is_refused(self, reader_client, machine):
        response = post(reader_client, [reading()])
        assert response.status_code == 403
        assert response.json() == {"detail": missing_scope_message("ingest")}

    def test_no_credentials_is_401(self, api_client, machine):
        response = post(api_client, [reading()])
        assert response.status_code == 401
        assert set(response.json()) == {"detail"}

    def test_get_is_405(self, key_client):
        response = key_client.get(URL)
        assert response.status_code == 405
        assert response.json() == {"detail": 'Method "GET" not allowed.'}

    def test_another_tenants_key_writes_to_its_own_machine(self, other_tenant_key_client, machine, other_machine):
        assert post(other_tenant_key_client, [reading()]).status_code == 202
        assert SensorReading.objects.get().sensor.machine == other_machine


class TestIngestQueryCount:
    def test_one_and_5000_readings_take_the_same_queries(self, api_key, machine):
        client = client_for_key(api_key.secret)
        post(client, [reading(ts="2026-01-01T00:00:00Z")])  # records last_used_at, once a minute
        with CaptureQueriesContext(connection) as one:
            assert post(client, batch(1)).status_code == 202
        with CaptureQueriesContext(connection) as many:
            assert post(client, batch(MAX_BATCH_SIZE, start=datetime(2026, 3, 2, tzinfo=UTC))).status_code == 202
        # The key lookup, the machines and sensors of the batch, then the writing transaction
        # (a SAVEPOINT inside the test's transaction): the batch's sensors locked once
        # (what the dropped foreign key checked per row), one INSERT (COPY on PostgreSQL), RELEASE.
        assert len(one) == len(many) == 6
        assert SensorReading.objects.count() == 1 + 1 + MAX_BATCH_SIZE

    def test_many_machines_are_still_resolved_in_one_query(self, api_key, tenant):
        from telemetry.tests.factories import MachineFactory, SensorFactory

        for i in range(20):
            SensorFactory(machine=MachineFactory(tenant=tenant, external_id=f"press-{i}"), key="temp")
        client = client_for_key(api_key.secret)
        post(client, [reading(machine="press-0", sensor="temp", ts="2026-01-01T00:00:00Z")])
        readings = [reading(machine=f"press-{i}", sensor="temp") for i in range(20)]
        with CaptureQueriesContext(connection) as queries:
            assert post(client, readings).status_code == 202
        # As for one machine: key, resolve, SAVEPOINT, lock, INSERT, RELEASE.
        assert len(queries) == 6


class TestIngestRace:
    @pytest.mark.django_db(transaction=True)
    def test_a_sensor_deleted_while_the_batch_is_stored_is_409_and_nothing_is_stored(
        self, key_client, machine, monkeypatch
    ):
        from telemetry import services

        resolve = services._sensor_ids_by_name

        def resolve_then_delete(**kwargs):
            found = resolve(**kwargs)
            machine.sensors.filter(key="bearing_temp").delete()  # an admin, meanwhile
            return found

        monkeypatch.setattr(services, "_sensor_ids_by_name", resolve_then_delete)
        response = post(key_client, [reading(sensor="oil_pressure"), reading()])
        assert response.status_code == 409
        assert response.json() == {
            "detail": "A machine or sensor of this batch was deleted while it was being stored; nothing was stored."
        }
        assert SensorReading.objects.count() == 0
