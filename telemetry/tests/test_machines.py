import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.permissions import missing_scope_message
from haltless.testing import add_sensors, client_for_key
from settings_app.models import UnitPreference
from telemetry.tests.factories import MachineFactory

URL = "/api/v1/machines"
pytestmark = pytest.mark.django_db

CANONICAL_SENSORS = [
    {"key": "bearing_temp", "kind": "temperature", "unit": "celsius"},
    {"key": "door_count", "kind": "other", "unit": None},
    {"key": "motor_current", "kind": "current", "unit": "A"},
    {"key": "oil_pressure", "kind": "pressure", "unit": "bar"},
    {"key": "spindle_speed", "kind": "speed", "unit": "rpm"},
    {"key": "spindle_vib", "kind": "vibration", "unit": "mm_s"},
]


class TestMachineList:
    def test_paginated_machines_with_their_sensors(self, reader_client, machine):
        response = reader_client.get(URL)
        assert response.status_code == 200
        assert response.json() == {
            "count": 1,
            "next": None,
            "previous": None,
            "results": [
                {
                    "id": str(machine.id),
                    "name": "Press 1",
                    "external_id": "m1",
                    "location": "Hall A",
                    "created_at": machine.created_at.isoformat().replace("+00:00", "Z"),
                    "sensors": CANONICAL_SENSORS,
                }
            ],
        }

    def test_sorted_by_name_and_paged(self, viewer_client, tenant):
        for name in ["Cutter", "Anvil", "Boiler"]:
            MachineFactory(tenant=tenant, name=name)
        first = viewer_client.get(URL, {"page_size": 2}).json()
        assert first["count"] == 3
        assert [m["name"] for m in first["results"]] == ["Anvil", "Boiler"]
        second = viewer_client.get(first["next"]).json()
        assert [m["name"] for m in second["results"]] == ["Cutter"]
        assert second["next"] is None

    def test_filter_by_external_id(self, reader_client, machine, tenant):
        MachineFactory(tenant=tenant, external_id="m10")
        response = reader_client.get(URL, {"external_id": "m1"})
        assert response.status_code == 200
        assert [m["external_id"] for m in response.json()["results"]] == ["m1"]

    @pytest.mark.parametrize("term", ["press", "M1", "hall a"])
    def test_search_name_external_id_and_location(self, reader_client, machine, tenant, term):
        MachineFactory(tenant=tenant, external_id="x9", name="Lathe", location="Yard")
        response = reader_client.get(URL, {"search": term})
        assert [m["external_id"] for m in response.json()["results"]] == ["m1"]

    @pytest.mark.parametrize(
        ("params", "errors"),
        [
            ({"search": "x" * 201}, {"search": ["Ensure this value has at most 200 characters (it has 201)."]}),
            (
                {"external_id": "x" * 101},
                {"external_id": ["Ensure this value has at most 100 characters (it has 101)."]},
            ),
            ({"search": "a\x00b"}, {"search": ["Null characters are not allowed."]}),
        ],
    )
    def test_bad_filters_are_400(self, reader_client, machine, params, errors):
        response = reader_client.get(URL, params)
        assert response.status_code == 400
        assert response.json() == errors

    def test_another_tenants_machines_are_not_listed(self, reader_client, machine, other_machine):
        response = reader_client.get(URL)
        assert [m["id"] for m in response.json()["results"]] == [str(machine.id)]
        assert other_machine.external_id == machine.external_id

    def test_sensor_units_follow_the_users_preferences(self, viewer_client, viewer_user, machine):
        UnitPreference.objects.create(user=viewer_user, temperature="fahrenheit", pressure="psi", vibration="in_s")
        sensors = viewer_client.get(URL).json()["results"][0]["sensors"]
        assert {s["key"]: s["unit"] for s in sensors} == {
            "bearing_temp": "fahrenheit",
            "door_count": None,
            "motor_current": "A",
            "oil_pressure": "psi",
            "spindle_speed": "rpm",
            "spindle_vib": "in_s",
        }

    def test_query_count_does_not_grow_with_machines(self, reader_client, tenant):
        add_sensors(MachineFactory(tenant=tenant))
        reader_client.get(URL)  # records the key's last_used_at (once a minute)
        with CaptureQueriesContext(connection) as one:
            assert reader_client.get(URL).status_code == 200
        for _ in range(10):
            add_sensors(MachineFactory(tenant=tenant))
        with CaptureQueriesContext(connection) as eleven:
            response = reader_client.get(URL)
        assert response.json()["count"] == 11
        assert len(one) == len(eleven)


class TestMachineDetail:
    def test_by_id(self, operator_client, machine):
        response = operator_client.get(f"{URL}/{machine.id}")
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == str(machine.id)
        assert body["sensors"] == CANONICAL_SENSORS

    def test_another_tenants_machine_is_404(self, reader_client, machine, other_machine):
        response = reader_client.get(f"{URL}/{other_machine.id}")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}

    def test_unknown_id_is_404(self, reader_client, machine):
        response = reader_client.get(f"{URL}/00000000-0000-0000-0000-000000000000")
        assert response.status_code == 404
        assert set(response.json()) == {"detail"}

    def test_a_non_uuid_is_404(self, reader_client, machine):
        response = reader_client.get(f"{URL}/m1")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}

    def test_trailing_slash(self, reader_client, machine):
        assert reader_client.get(f"{URL}/{machine.id}/").status_code == 200


class TestMachineAccess:
    def test_a_key_without_read_machines_is_refused(self, key_client, machine):
        response = key_client.get(URL)
        assert response.status_code == 403
        assert response.json() == {"detail": missing_scope_message("read:machines")}

    def test_read_sensors_alone_is_not_enough(self, make_api_key, machine):
        response = client_for_key(make_api_key(scopes=["read:sensors"]).secret).get(f"{URL}/{machine.id}")
        assert response.status_code == 403
        assert response.json() == {"detail": missing_scope_message("read:machines")}

    @pytest.mark.parametrize("client_fixture", ["admin_client", "operator_client", "viewer_client"])
    def test_any_role_may_read(self, request, client_fixture, machine):
        response = request.getfixturevalue(client_fixture).get(URL)
        assert response.status_code == 200
        assert response.json()["count"] == 1

    def test_no_credentials_is_401(self, api_client):
        response = api_client.get(URL)
        assert response.status_code == 401
        assert set(response.json()) == {"detail"}
