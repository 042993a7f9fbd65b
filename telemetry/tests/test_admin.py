import re
from datetime import timedelta

import pytest

from apikeys.authentication import ApiKeyPrincipal
from audit.models import AuditEvent
from core.caller import Caller
from haltless.testing import T0
from telemetry.models import AgentHeartbeat, Machine, Sensor, SensorReading
from telemetry.services import heartbeat_record, readings_bulk_insert

pytestmark = pytest.mark.django_db


@pytest.fixture
def readings(machine):
    sensor = machine.sensors.get(key="bearing_temp")
    readings_bulk_insert(
        tenant_id=machine.tenant_id, rows=[(sensor.pk, T0 + timedelta(minutes=i), i) for i in range(5)]
    )
    return SensorReading.objects.order_by("ts")


class TestMachineAdmin:
    def test_list_shows_the_last_reading_time(self, staff_client, readings, machine):
        page = staff_client.get("/admin/telemetry/machine/").content.decode()
        assert "Press 1" in page
        assert "March 1, 2026, 12:04" in page

    def test_change_page_has_the_sensors_inline(self, staff_client, machine):
        response = staff_client.get(f"/admin/telemetry/machine/{machine.pk}/change/")
        assert response.status_code == 200
        page = response.content.decode()
        for key in ("bearing_temp", "oil_pressure", "door_count"):
            assert re.search(rf'<td class="field-key">\s*<p>{key}</p>', page), key
        assert "mm_s" in page  # the canonical unit of the vibration sensor
        # Existing sensors are shown, not edited; new ones go in the "add sensors" rows.
        assert 'name="sensors-0-key"' not in page
        assert 'name="new_sensors-0-key"' in page

    def test_add_with_sensors(self, staff_client, tenant):
        data = {
            "tenant": str(tenant.pk),
            "external_id": "press-7",
            "name": "Press 7",
            "location": "",
            "new_sensors-TOTAL_FORMS": "1",
            "new_sensors-INITIAL_FORMS": "0",
            "new_sensors-0-key": "temp",
            "new_sensors-0-kind": "temperature",
        }
        response = staff_client.post("/admin/telemetry/machine/add/", data)
        assert response.status_code == 302
        machine = Machine.objects.get(external_id="press-7")
        assert list(machine.sensors.values_list("key", "kind")) == [("temp", "temperature")]

    def test_a_duplicate_external_id_is_a_form_error(self, staff_client, machine, tenant):
        data = {
            "tenant": str(tenant.pk),
            "external_id": "m1",
            "name": "Again",
            "new_sensors-TOTAL_FORMS": "0",
            "new_sensors-INITIAL_FORMS": "0",
        }
        response = staff_client.post("/admin/telemetry/machine/add/", data)
        assert response.status_code == 200
        assert Machine.objects.count() == 1

    def test_the_tenant_of_a_machine_never_changes(self, staff_client, machine, readings, other_tenant):
        url = f"/admin/telemetry/machine/{machine.pk}/change/"
        page = staff_client.get(url).content.decode()
        assert 'name="tenant"' not in page and 'name="external_id"' not in page
        data = {
            "tenant": str(other_tenant.pk),
            "external_id": "moved",
            "name": "Press 1b",
            "location": "Hall 2",
            "sensors-TOTAL_FORMS": "0",
            "sensors-INITIAL_FORMS": "0",
            "new_sensors-TOTAL_FORMS": "0",
            "new_sensors-INITIAL_FORMS": "0",
        }
        assert staff_client.post(url, data).status_code == 302
        machine.refresh_from_db()
        assert (machine.tenant_id, machine.external_id) == (readings.first().tenant_id, "m1")
        assert (machine.name, machine.location) == ("Press 1b", "Hall 2")
        event = AuditEvent.objects.get(action="machine.update")
        assert event.changes == {"name": ["Press 1", "Press 1b"], "location": ["Hall A", "Hall 2"]}

    def test_the_sensor_rows_cannot_delete_a_sensor_without_asking(self, staff_client, machine, readings):
        url = f"/admin/telemetry/machine/{machine.pk}/change/"
        page = staff_client.get(url).content.decode()
        assert "DELETE" not in page
        sensor = machine.sensors.get(key="bearing_temp")
        assert f'href="/admin/telemetry/sensor/{sensor.pk}/delete/"' in page
        sensors = list(machine.sensors.order_by("key"))
        data = {
            "name": machine.name,
            "location": machine.location,
            "sensors-TOTAL_FORMS": str(len(sensors)),
            "sensors-INITIAL_FORMS": str(len(sensors)),
            "new_sensors-TOTAL_FORMS": "0",
            "new_sensors-INITIAL_FORMS": "0",
        }
        for index, each in enumerate(sensors):
            data.update({f"sensors-{index}-id": str(each.pk), f"sensors-{index}-DELETE": "on"})
        staff_client.post(url, data)
        assert machine.sensors.count() == len(sensors)
        assert SensorReading.objects.count() == 5

    def test_deleting_a_sensor_shows_its_readings_and_asks(self, staff_client, machine, readings):
        sensor = machine.sensors.get(key="bearing_temp")
        url = f"/admin/telemetry/sensor/{sensor.pk}/delete/"
        page = staff_client.get(url).content.decode()
        assert "Are you sure you want to delete the sensor" in page
        assert "Sensor readings: 5" in page
        assert Sensor.objects.filter(pk=sensor.pk).exists()
        response = staff_client.post(url, {"post": "yes"})
        assert response.status_code == 302
        assert response["Location"] == f"/admin/telemetry/machine/{machine.pk}/change/"
        assert not Sensor.objects.filter(pk=sensor.pk).exists()
        assert not SensorReading.objects.exists()
        event = AuditEvent.objects.get(action="sensor.delete")
        assert event.changes == {"machine": "m1", "key": "bearing_temp", "readings": 5}

    def test_adding_sensors_on_the_change_page(self, staff_client, machine):
        url = f"/admin/telemetry/machine/{machine.pk}/change/"
        existing = machine.sensors.count()
        data = {
            "name": machine.name,
            "location": machine.location,
            "sensors-TOTAL_FORMS": str(existing),
            "sensors-INITIAL_FORMS": str(existing),
            "new_sensors-TOTAL_FORMS": "2",
            "new_sensors-INITIAL_FORMS": "0",
            "new_sensors-0-key": "coolant_temp",
            "new_sensors-0-kind": "temperature",
            "new_sensors-1-key": "bearing_temp",
            "new_sensors-1-kind": "temperature",
        }
        for index, each in enumerate(machine.sensors.order_by("key")):
            data[f"sensors-{index}-id"] = str(each.pk)
        response = staff_client.post(url, data)
        assert response.status_code == 200
        assert "The machine already has a sensor with key &#x27;bearing_temp&#x27;." in response.content.decode()
        assert machine.sensors.count() == existing
        data["new_sensors-TOTAL_FORMS"] = "1"
        response = staff_client.post(url, data)
        assert response.status_code == 302
        assert machine.sensors.filter(key="coolant_temp", kind="temperature").exists()
        assert AuditEvent.objects.filter(action="sensor.create").count() == 1

    def test_delete_confirmation_counts_readings_instead_of_listing_them(
        self, staff_client, readings, machine, django_capture_on_commit_callbacks
    ):
        url = f"/admin/telemetry/machine/{machine.pk}/delete/"
        page = staff_client.get(url).content.decode()
        assert "Sensor readings: 5" in page
        with django_capture_on_commit_callbacks(execute=True):
            assert staff_client.post(url, {"post": "yes"}).status_code == 302
        assert not Machine.all_objects.exists()
        assert not Sensor.objects.exists()
        assert not SensorReading.objects.exists()
        event = AuditEvent.objects.get(action="machine.delete")
        assert event.changes == {"external_id": "m1", "sensors": 6, "readings": 5}


class TestReadingAdmin:
    def test_list_is_viewable(self, staff_client, readings):
        response = staff_client.get("/admin/telemetry/sensorreading/")
        assert response.status_code == 200
        assert "m1/bearing_temp" in response.content.decode()

    def test_search_by_machine_external_id(self, staff_client, readings):
        response = staff_client.get("/admin/telemetry/sensorreading/", {"q": "m1"})
        assert response.status_code == 200
        assert response.context["cl"].result_count == 5

    def test_readings_are_read_only(self, staff_client, readings):
        reading = readings.first()
        assert staff_client.get("/admin/telemetry/sensorreading/add/").status_code == 403
        page = staff_client.get(f"/admin/telemetry/sensorreading/{reading.pk}/change/")
        assert page.status_code == 200
        assert 'name="value"' not in page.content.decode()
        staff_client.post(f"/admin/telemetry/sensorreading/{reading.pk}/change/", {"value": "99"})
        reading.refresh_from_db()
        assert reading.value == 0.0
        assert (
            staff_client.post(f"/admin/telemetry/sensorreading/{reading.pk}/delete/", {"post": "yes"}).status_code
            == 403
        )
        assert SensorReading.objects.count() == 5

    def test_the_count_is_bounded(self, staff_client, readings, monkeypatch):
        from telemetry.admin import BoundedCountPaginator

        monkeypatch.setattr(BoundedCountPaginator, "LIMIT", 3)
        response = staff_client.get("/admin/telemetry/sensorreading/")
        assert response.context["cl"].result_count == 3


class TestHeartbeatAdmin:
    def test_shows_the_latest_heartbeat_of_each_key_by_default(self, staff_client, api_key, make_api_key, tenant):
        other = make_api_key(name="line 2")
        for version in ("1.0", "1.1"):
            heartbeat_record(by=Caller.acting(ApiKeyPrincipal(api_key.api_key)), agent_version=version)
        heartbeat_record(by=Caller.acting(ApiKeyPrincipal(other.api_key)), agent_version="2.0")
        response = staff_client.get("/admin/telemetry/agentheartbeat/")
        assert response.status_code == 200
        shown = sorted(hb.agent_version for hb in response.context["cl"].result_list)
        assert shown == ["1.1", "2.0"]
        everything = staff_client.get("/admin/telemetry/agentheartbeat/", {"show": "all"})
        assert sorted(hb.agent_version for hb in everything.context["cl"].result_list) == ["1.0", "1.1", "2.0"]

    def test_heartbeats_are_read_only(self, staff_client, api_key, tenant):
        heartbeat = heartbeat_record(by=Caller.acting(ApiKeyPrincipal(api_key.api_key)))
        assert staff_client.get("/admin/telemetry/agentheartbeat/add/").status_code == 403
        delete_url = f"/admin/telemetry/agentheartbeat/{heartbeat.pk}/delete/"
        assert staff_client.post(delete_url, {"post": "yes"}).status_code == 403
        assert AgentHeartbeat.objects.count() == 1


class TestHeldReadings:
    def test_the_delete_page_says_a_hold_keeps_the_readings_and_refuses(self, staff_client, readings, machine, tenant):
        from retention.models import RetentionHold

        RetentionHold.objects.create(tenant=tenant, reason="lawsuit", starts_at=T0 - timedelta(days=1))
        url = f"/admin/telemetry/machine/{machine.pk}/delete/"
        page = staff_client.get(url).content.decode()
        assert "Readings of this machine are under a legal hold; release the hold first." in page
        staff_client.post(url, {"post": "yes"})
        assert Machine.objects.filter(pk=machine.pk).exists() and SensorReading.objects.count() == 5
