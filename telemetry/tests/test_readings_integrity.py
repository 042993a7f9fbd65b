"""No orphan readings without foreign keys; the fast and slow ingest paths accept the same batches.

The readings table has no foreign-key constraints (see SensorReading). These
tests prove what the constraints used to: deleting a sensor, a machine or a
tenant, however it is done, leaves no reading behind, also when an ingest
stores readings for the sensor while it is being deleted.
"""

import json
import threading

import psycopg
import pytest
from django.db import connection

from haltless.testing import T0
from telemetry.models import Sensor, SensorReading
from telemetry.services import TypedReadings, ingest_body_decode, readings_bulk_insert
from tenants.models import Tenant

URL = "/api/v1/ingest"


@pytest.fixture
def stored(machine, other_machine):
    """Three readings of every sensor of `machine` and of `other_machine` (another tenant's)."""
    for m in (machine, other_machine):
        rows = [(sensor.pk, T0.replace(minute=n), float(n)) for sensor in m.sensors.all() for n in range(3)]
        readings_bulk_insert(tenant_id=m.tenant_id, rows=rows)
    return machine


def orphans() -> int:
    return (
        SensorReading.objects.exclude(sensor_id__in=Sensor.objects.values("id")).count()
        + SensorReading.objects.exclude(tenant_id__in=Tenant.objects.values("id")).count()
    )


@pytest.mark.django_db
class TestDeletesLeaveNoOrphanReadings:
    def test_deleting_a_sensor_deletes_its_readings_only(self, stored, other_machine):
        sensor = stored.sensors.get(key="bearing_temp")
        sensor.delete()
        assert not SensorReading.objects.filter(sensor_id=sensor.pk).exists()
        assert SensorReading.objects.count() == 3 * 5 + 3 * 6
        assert orphans() == 0

    def test_deleting_a_machine_deletes_its_readings_only(self, stored, other_machine):
        stored.delete()
        assert SensorReading.objects.count() == 3 * 6
        assert set(SensorReading.objects.values_list("tenant_id", flat=True)) == {other_machine.tenant_id}
        assert orphans() == 0

    def test_deleting_a_tenant_deletes_its_readings_only(self, stored, other_machine):
        Tenant.objects.get(pk=stored.tenant_id).delete()
        assert SensorReading.objects.count() == 3 * 6
        assert orphans() == 0

    def test_a_sensor_deleted_by_raw_sql_takes_its_readings_along(self, stored):
        # Past the ORM's cascade: the database trigger of migration 0003.
        sensor = stored.sensors.get(key="oil_pressure")
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM telemetry_sensor WHERE id = %s", [sensor.pk])
        assert not SensorReading.objects.filter(sensor_id=sensor.pk).exists()
        assert SensorReading.objects.count() == 3 * 5 + 3 * 6
        assert orphans() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_readings_stored_while_their_sensor_is_deleted_are_deleted_with_it(machine):
    """An ingest holds its sensors' lock (FOR KEY SHARE); a delete that ran its ORM cascade
    meanwhile waits for the ingest to commit, and its trigger then deletes what was stored."""
    sensor = machine.sensors.get(key="bearing_temp")
    dsn = {k: v for k, v in connection.get_connection_params().items() if k in ("dbname", "host", "port", "user")}
    ingest = psycopg.connect(**dsn)
    ingest.execute("SELECT 1 FROM telemetry_sensor WHERE id = %s FOR KEY SHARE", [sensor.pk])
    ingest.execute(
        "INSERT INTO telemetry_sensorreading (tenant_id, sensor_id, ts, value) VALUES (%s, %s, %s, 1.0)",
        [machine.tenant_id, sensor.pk, T0],
    )
    deleted = threading.Event()

    def delete_sensor():
        with psycopg.connect(**dsn, autocommit=False) as admin:
            admin.execute("DELETE FROM telemetry_sensorreading WHERE sensor_id = %s", [sensor.pk])  # ORM cascade
            admin.execute("DELETE FROM telemetry_sensor WHERE id = %s", [sensor.pk])  # waits for the lock
            admin.commit()
        deleted.set()

    deleter = threading.Thread(target=delete_sensor)
    deleter.start()
    assert not deleted.wait(0.5), "the delete did not wait for the ingest's lock"
    ingest.commit()
    ingest.close()
    deleter.join(10)
    assert deleted.is_set()
    assert not Sensor.objects.filter(pk=sensor.pk).exists()
    assert orphans() == 0


class TestFastDecoding:
    """The parser's msgspec path takes only well-typed batches; everything else goes to json.loads."""

    def body(self, **changes) -> bytes:
        reading = {"machine": "m1", "sensor": "bearing_temp", "ts": "2026-03-01T12:00:00Z", "value": 21.5}
        return json.dumps({"readings": [{**reading, **changes}]}).encode()

    def test_a_well_typed_batch_is_decoded_fast(self):
        decoded = ingest_body_decode(self.body())
        assert type(decoded["readings"]) is TypedReadings
        assert decoded["readings"][0].value == 21.5

    def test_an_integer_value_is_a_float(self):
        assert ingest_body_decode(self.body(value=3))["readings"][0].value == 3.0

    @pytest.mark.parametrize(
        "body",
        [
            b"[]",
            b'{"readings": []}',
            b'{"readings": [], "extra": 1}',
            b'{"readings": [{"machine": "m1"}]}',
            b'{"readings": [{"machine": "", "sensor": "s", "ts": "2026-03-01T12:00:00Z", "value": 1}]}',
            b'{"readings": [{"machine": "m", "sensor": "s", "ts": "2026-03-01T12:00:00Z", "value": true}]}',
            b'{"readings": [{"machine": "m", "sensor": "s", "ts": "2026-03-01T12:00:00Z", "value": NaN}]}',
            b'{"readings": [{"machine": "m", "sensor": "s", "ts": "2026-03-01T12:00:00Z", "value": 1e400}]}',
            b'{"readings": [{"machine": "m", "sensor": "s", "ts": 5, "value": 1}]}',
            b'{"readings": [{"machine": "m", "sensor": "s", "ts": "x", "value": 1, "unit": "C"}]}',
            b'{"readings": [{"machine": "m\\ud800", "sensor": "s", "ts": "2026-03-01T12:00:00Z", "value": 1}]}',
        ],
    )
    def test_anything_else_takes_the_slow_path(self, body):
        assert ingest_body_decode(body) is None


@pytest.mark.django_db
class TestFastPathFallsBackForTheChecksItCannotMake:
    """A well-typed reading the service must still refuse: the same 400 as from the slow path."""

    @pytest.mark.parametrize(
        ("changes", "errors"),
        [
            ({"ts": "2026-03-01T12:00:00"}, {"ts": ["Must include a timezone (Z or an offset such as +00:00)."]}),
            ({"ts": "yesterday"}, {"ts": ["Must be an ISO 8601 datetime with a timezone, e.g. 2026-04-04T10:00:00Z."]}),
            ({"ts": "2999-01-01T00:00:00Z"}, {"ts": ["Must not be more than 5 minutes in the future."]}),
            ({"ts": "1969-12-31T23:59:59Z"}, {"ts": ["Must not be before 1970-01-01T00:00:00Z."]}),
            ({"sensor": "a\x00b"}, {"sensor": ["Must not contain NUL characters or unpaired surrogates."]}),
        ],
    )
    def test_second_reading(self, key_client, machine, changes, errors):
        good = {"machine": "m1", "sensor": "bearing_temp", "ts": "2026-03-01T12:00:00Z", "value": 1}
        body = json.dumps({"readings": [good, {**good, **changes}]}).encode()
        assert ingest_body_decode(body) is not None  # msgspec takes it; the service refuses it
        response = key_client.post(URL, body, content_type="application/json")
        assert response.status_code == 400
        assert response.json() == {"readings": {"1": errors}}
        assert SensorReading.objects.count() == 0
