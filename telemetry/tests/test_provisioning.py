"""Provisioning machines and sensors over HTTP: admin JWT, or an API key with `write:machines`."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from haltless.testing import client_for_key
from retention.models import RetentionHold
from telemetry.models import Machine, Sensor, SensorReading
from telemetry.services import readings_bulk_insert

pytestmark = pytest.mark.django_db

MACHINES = "/api/v1/machines"
PRESS = {
    "external_id": "press-9",
    "name": "Press 9",
    "location": "Hall C",
    "sensors": [{"key": "bearing_temp", "kind": "temperature"}, {"key": "oil_pressure", "kind": "pressure"}],
}


@pytest.fixture
def writer(make_api_key):
    return client_for_key(make_api_key(scopes=["write:machines", "read:machines"], name="mes sync").secret)


def with_reading(machine, key="bearing_temp", ts=None):
    sensor = machine.sensors.get(key=key)
    readings_bulk_insert(tenant_id=machine.tenant_id, rows=[(sensor.pk, ts or timezone.now(), 20.0)])
    return sensor


class TestCreate:
    def test_an_admin_creates_a_machine_with_its_sensors(self, admin_client, admin_user, tenant):
        response = admin_client.post(MACHINES, PRESS)
        assert response.status_code == 201, response.json()
        body = response.json()
        assert (body["external_id"], body["name"], body["location"]) == ("press-9", "Press 9", "Hall C")
        assert [(s["key"], s["kind"]) for s in body["sensors"]] == [
            ("bearing_temp", "temperature"),
            ("oil_pressure", "pressure"),
        ]
        machine = Machine.objects.get(pk=body["id"])
        assert machine.tenant == tenant
        event = AuditEvent.objects.get(action="machine.create")
        assert (event.actor_id, event.tenant_id) == (admin_user.id, tenant.id)

    def test_a_key_with_write_machines_creates_one_and_is_the_audited_actor(self, writer, tenant):
        response = writer.post(MACHINES, PRESS)
        assert response.status_code == 201
        assert AuditEvent.objects.get(action="machine.create").actor_type == "api_key"

    def test_a_machine_scoped_key_cannot_create_machines(self, machine, tenant):
        from apikeys.services import api_key_create
        from core.caller import Caller

        scoped = api_key_create(
            by=Caller.system(tenant_id=tenant.pk),
            name="line 1 sync",
            scopes_requested=["write:machines", "read:machines"],
            machines=["m1"],
        )
        response = client_for_key(scoped.secret).post(MACHINES, PRESS)
        assert response.status_code == 403
        assert response.json() == {
            "detail": "A machine-scoped API key cannot create machines: "
            "a new machine would be outside the key's machines."
        }
        assert not Machine.objects.filter(external_id="press-9").exists()
        # Its own machine it still provisions.
        client = client_for_key(scoped.secret)
        assert client.patch(f"{MACHINES}/{machine.pk}", {"name": "Press 1b"}).status_code == 200
        assert client.post(f"{MACHINES}/{machine.pk}/sensors", {"key": "oil", "kind": "pressure"}).status_code == 201

    def test_a_key_without_the_scope_is_refused(self, read_only_key):
        response = client_for_key(read_only_key.secret).post(MACHINES, PRESS)
        assert response.status_code == 403
        assert response.json() == {"detail": "API key does not have the required scope: write:machines"}
        assert not Machine.objects.exists()

    @pytest.mark.parametrize("role_client", ["operator_client", "viewer_client"])
    def test_other_roles_are_refused(self, request, role_client):
        response = request.getfixturevalue(role_client).post(MACHINES, PRESS)
        assert response.status_code == 403
        assert response.json() == {"detail": "Only a tenant admin may do this."}

    def test_a_duplicate_external_id_is_a_400_naming_the_field(self, admin_client):
        admin_client.post(MACHINES, PRESS)
        response = admin_client.post(MACHINES, PRESS)
        assert response.status_code == 400
        assert response.json() == {"external_id": ["The tenant already has a machine with external id 'press-9'."]}
        assert Machine.objects.count() == 1

    def test_a_sensor_key_twice_is_a_400_on_sensors(self, admin_client):
        body = {**PRESS, "sensors": [{"key": "t", "kind": "temperature"}, {"key": "t", "kind": "pressure"}]}
        response = admin_client.post(MACHINES, body)
        assert response.status_code == 400
        assert response.json() == {"sensors": ["'t' is given twice."]}
        assert not Machine.objects.exists()

    def test_unknown_fields_and_kinds_are_refused(self, admin_client):
        assert admin_client.post(MACHINES, {**PRESS, "tenant": "x"}).json() == {"tenant": ["Unknown field."]}
        bad_kind = {**PRESS, "sensors": [{"key": "t", "kind": "smell"}]}
        assert admin_client.post(MACHINES, bad_kind).status_code == 400
        assert not Machine.objects.exists()


class TestUpdate:
    def test_name_and_location_change_and_are_audited(self, writer, machine):
        response = writer.patch(f"{MACHINES}/{machine.pk}", {"name": "Press 1b", "location": "Hall B"})
        assert response.status_code == 200
        assert (response.json()["name"], response.json()["location"]) == ("Press 1b", "Hall B")
        assert AuditEvent.objects.get(action="machine.update").changes == {
            "name": ["Press 1", "Press 1b"],
            "location": ["Hall A", "Hall B"],
        }

    def test_the_external_id_never_changes(self, admin_client, machine):
        response = admin_client.patch(f"{MACHINES}/{machine.pk}", {"external_id": "moved"})
        assert response.status_code == 400
        assert response.json() == {"external_id": ["Unknown field."]}
        machine.refresh_from_db()
        assert machine.external_id == "m1"

    def test_another_tenants_machine_is_not_found(self, other_tenant_admin_client, machine):
        assert other_tenant_admin_client.patch(f"{MACHINES}/{machine.pk}", {"name": "x"}).status_code == 404
        assert other_tenant_admin_client.delete(f"{MACHINES}/{machine.pk}").status_code == 404
        assert Machine.objects.filter(pk=machine.pk, name="Press 1").exists()


class TestDelete:
    def test_deleting_a_machine_takes_its_sensors_and_readings(
        self, writer, machine, django_capture_on_commit_callbacks
    ):
        with_reading(machine)
        with django_capture_on_commit_callbacks(execute=True) as purges:
            response = writer.delete(f"{MACHINES}/{machine.pk}")
        assert response.status_code == 204
        assert len(purges) == 1
        assert not Machine.all_objects.exists() and not Sensor.objects.exists() and not SensorReading.objects.exists()
        assert AuditEvent.objects.get(action="machine.delete").changes["readings"] == 1

    def test_the_machine_is_gone_at_once_and_its_readings_go_in_the_background(
        self, writer, admin_client, machine, api_key, django_capture_on_commit_callbacks
    ):
        with_reading(machine)
        with django_capture_on_commit_callbacks(execute=False) as purges:
            assert writer.delete(f"{MACHINES}/{machine.pk}").status_code == 204
        # Not purged yet: the readings are still stored, but no reader finds the machine.
        assert SensorReading.objects.count() == 1 and Machine.all_objects.filter(pk=machine.pk).exists()
        assert writer.get(f"{MACHINES}/{machine.pk}").status_code == 404
        assert writer.get(MACHINES).json()["count"] == 0
        assert writer.delete(f"{MACHINES}/{machine.pk}").status_code == 404
        ingest = client_for_key(api_key.secret).post(
            "/api/v1/ingest",
            {"readings": [{"machine": "m1", "sensor": "bearing_temp", "ts": "2026-03-01T12:00:00Z", "value": 1.0}]},
        )
        assert ingest.status_code == 400
        assert ingest.json() == {"readings": {"0": {"machine": ["Unknown machine 'm1'."]}}}
        # Its external id is free at once: an MES sync may re-create it.
        again = admin_client.post(MACHINES, {"external_id": "m1", "name": "Press 1 (new)"})
        assert again.status_code == 201, again.json()
        purges[0]()
        assert SensorReading.objects.count() == 0
        assert list(Machine.all_objects.values_list("name", flat=True)) == ["Press 1 (new)"]

    def test_a_purge_lost_with_the_broker_is_done_by_the_sweep(self, writer, machine, settings):
        from telemetry import tasks

        with_reading(machine)
        assert writer.delete(f"{MACHINES}/{machine.pk}").status_code == 204  # the purge is never run here
        assert tasks.machines_purge_pending() == 0  # only purges older than a few minutes: not lost yet
        Machine.all_objects.filter(pk=machine.pk).update(deleting_since=timezone.now() - timedelta(minutes=6))
        assert tasks.machines_purge_pending() == 1
        assert not Machine.all_objects.exists() and not SensorReading.objects.exists()
        assert settings.CELERY_BEAT_SCHEDULE["telemetry-machines-purge"]["task"] == "telemetry.machines_purge_pending"

    def test_a_hold_placed_before_the_purge_keeps_the_readings(self, writer, machine, tenant):
        from telemetry.services import machine_purge

        with_reading(machine, ts=timezone.now() - timedelta(days=2))
        assert writer.delete(f"{MACHINES}/{machine.pk}").status_code == 204
        RetentionHold.objects.create(tenant=tenant, reason="lawsuit", starts_at=timezone.now() - timedelta(days=30))
        assert machine_purge(machine_id=machine.pk) is False
        assert SensorReading.objects.count() == 1

    def test_a_machine_with_held_readings_cannot_be_deleted(self, admin_client, machine, tenant):
        with_reading(machine, ts=timezone.now() - timedelta(days=2))
        RetentionHold.objects.create(tenant=tenant, reason="lawsuit", starts_at=timezone.now() - timedelta(days=30))
        response = admin_client.delete(f"{MACHINES}/{machine.pk}")
        assert response.status_code == 409
        assert response.json() == {"detail": "Readings of this machine are under a legal hold; release the hold first."}
        assert SensorReading.objects.count() == 1 and Machine.objects.filter(pk=machine.pk).exists()

    def test_a_hold_on_another_window_does_not_stop_it(self, admin_client, machine, tenant):
        with_reading(machine, ts=timezone.now() - timedelta(days=2))
        RetentionHold.objects.create(
            tenant=tenant,
            reason="old case",
            starts_at=timezone.now() - timedelta(days=300),
            ends_at=timezone.now() - timedelta(days=200),
        )
        assert admin_client.delete(f"{MACHINES}/{machine.pk}").status_code == 204


class TestSensors:
    def test_adding_a_sensor(self, writer, machine):
        response = writer.post(f"{MACHINES}/{machine.pk}/sensors", {"key": "coolant_temp", "kind": "temperature"})
        assert response.status_code == 201
        assert response.json()["key"] == "coolant_temp"
        assert machine.sensors.filter(key="coolant_temp").exists()
        assert AuditEvent.objects.filter(action="sensor.create").count() == 1

    def test_a_duplicate_key_is_a_400_on_key(self, admin_client, machine):
        response = admin_client.post(f"{MACHINES}/{machine.pk}/sensors", {"key": "bearing_temp", "kind": "pressure"})
        assert response.status_code == 400
        assert response.json() == {"key": ["The machine already has a sensor with key 'bearing_temp'."]}

    def test_deleting_a_sensor_and_its_readings(self, writer, machine):
        with_reading(machine)
        response = writer.delete(f"{MACHINES}/{machine.pk}/sensors/bearing_temp")
        assert response.status_code == 204
        assert not machine.sensors.filter(key="bearing_temp").exists()
        assert not SensorReading.objects.exists()
        assert AuditEvent.objects.get(action="sensor.delete").changes["readings"] == 1

    def test_an_unknown_sensor_key_is_not_found(self, admin_client, machine):
        response = admin_client.delete(f"{MACHINES}/{machine.pk}/sensors/nope")
        assert response.status_code == 404
        assert response.json() == {"detail": "The machine has no sensor with this key."}

    def test_a_held_sensor_cannot_be_deleted(self, admin_client, machine, tenant):
        with_reading(machine)
        hold = RetentionHold.objects.create(
            tenant=tenant, reason="audit", all_machines=False, starts_at=timezone.now() - timedelta(days=1)
        )
        hold.machines.add(machine)
        response = admin_client.delete(f"{MACHINES}/{machine.pk}/sensors/bearing_temp")
        assert response.status_code == 409
        assert response.json() == {"detail": "Readings of this sensor are under a legal hold; release the hold first."}
        assert admin_client.delete(f"{MACHINES}/{machine.pk}/sensors/oil_pressure").status_code == 204
