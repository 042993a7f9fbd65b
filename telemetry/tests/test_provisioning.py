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
    def test_deleting_a_machine_takes_its_sensors_and_readings(self, writer, machine):
        with_reading(machine)
        response = writer.delete(f"{MACHINES}/{machine.pk}")
        assert response.status_code == 204
        assert not Machine.objects.exists() and not Sensor.objects.exists() and not SensorReading.objects.exists()
        assert AuditEvent.objects.get(action="machine.delete").changes["readings"] == 1

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
        assert admin_client.delete(f"{MACHINES}/{machine.pk}/sensors/nope").status_code == 404

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
