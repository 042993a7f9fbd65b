import base64
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.dateparse import parse_datetime

from core.permissions import missing_scope_message
from haltless.testing import T0, client_for_key
from settings_app.models import UnitPreference
from telemetry.rollups import rollups_build
from telemetry.services import readings_bulk_insert

READINGS_URL = "/api/v1/sensor-data/readings"
LATEST_URL = "/api/v1/sensor-data/latest"
AGGREGATE_URL = "/api/v1/sensor-data/aggregate"
pytestmark = pytest.mark.django_db


def sensor(machine, key):
    return machine.sensors.get(key=key)


def store(machine, key, values, start=T0, step=timedelta(minutes=1)):
    """Readings of one sensor, one per `step` from `start`."""
    readings_bulk_insert(
        tenant_id=machine.tenant_id,
        rows=[(sensor(machine, key).pk, start + i * step, value) for i, value in enumerate(values)],
    )


def ts(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def all_pages(client, url, params):
    items, pages, next_url = [], 0, None
    response = client.get(url, params)
    while True:
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"next", "previous", "results"}
        items.extend(body["results"])
        pages += 1
        next_url = body["next"]
        if next_url is None:
            return items, pages
        response = client.get(next_url)


@pytest.fixture
def stored(machine):
    store(machine, "bearing_temp", [20.0, 21.0, 22.0])
    store(machine, "oil_pressure", [1.0, 2.0])
    store(machine, "spindle_vib", [25.4])
    store(machine, "motor_current", [5.5])
    store(machine, "door_count", [3.0])
    return machine


class TestReadings:
    def test_newest_first_with_the_documented_item(self, reader_client, stored):
        response = reader_client.get(READINGS_URL, {"machine": "m1", "sensor": "bearing_temp"})
        assert response.status_code == 200
        body = response.json()
        assert body["next"] is None
        assert body["previous"] is None
        assert body["results"] == [
            {
                "machine_id": str(stored.id),
                "sensor": "bearing_temp",
                "ts": ts(T0 + timedelta(minutes=m)),
                "value": value,
                "unit": "celsius",
            }
            for m, value in [(2, 22.0), (1, 21.0), (0, 20.0)]
        ]

    def test_machine_by_id_is_the_same_as_by_external_id(self, reader_client, stored):
        by_id = reader_client.get(READINGS_URL, {"machine": str(stored.id)}).json()
        by_external_id = reader_client.get(READINGS_URL, {"machine": "m1"}).json()
        assert by_id == by_external_id
        assert len(by_id["results"]) == 8

    def test_all_sensors_of_the_machine_when_no_sensor_is_given(self, reader_client, stored):
        results = reader_client.get(READINGS_URL, {"machine": "m1"}).json()["results"]
        assert [(r["ts"], r["sensor"]) for r in results][:3] == [
            (ts(T0 + timedelta(minutes=2)), "bearing_temp"),
            (ts(T0 + timedelta(minutes=1)), "oil_pressure"),
            (ts(T0 + timedelta(minutes=1)), "bearing_temp"),
        ]
        assert sorted({r["sensor"] for r in results}) == [
            "bearing_temp",
            "door_count",
            "motor_current",
            "oil_pressure",
            "spindle_vib",
        ]

    def test_from_is_inclusive_and_to_exclusive(self, reader_client, stored):
        params = {
            "machine": "m1",
            "sensor": "bearing_temp",
            "from": ts(T0 + timedelta(minutes=1)),
            "to": ts(T0 + timedelta(minutes=2)),
        }
        results = reader_client.get(READINGS_URL, params).json()["results"]
        assert [r["value"] for r in results] == [21.0]

    def test_an_unencoded_plus_in_the_offset_is_understood(self, reader_client, stored):
        query = f"machine=m1&sensor=bearing_temp&from={(T0 + timedelta(minutes=1)).isoformat()}"
        response = reader_client.get(f"{READINGS_URL}?{query}")  # "+00:00" arrives as " 00:00"
        assert response.status_code == 200
        assert [r["value"] for r in response.json()["results"]] == [22.0, 21.0]

    def test_pagination_to_the_end_visits_every_reading_once(self, reader_client, machine):
        store(machine, "bearing_temp", [float(i) for i in range(250)])
        store(machine, "oil_pressure", [float(i) for i in range(250)])  # same timestamps: ties
        store(machine, "spindle_vib", [float(i) for i in range(10)], start=T0 + timedelta(seconds=30))
        # An odd page size splits ties between sensors across pages.
        items, pages = all_pages(reader_client, READINGS_URL, {"machine": "m1", "page_size": 7})
        assert pages == 73
        assert len(items) == 510
        assert len({(i["sensor"], i["ts"]) for i in items}) == 510
        sensor_ids = {s.key: s.pk for s in machine.sensors.all()}
        keys = [(parse_datetime(i["ts"]), sensor_ids[i["sensor"]]) for i in items]
        assert keys == sorted(keys, reverse=True)

    def test_one_sensor_pages_to_the_end(self, reader_client, machine):
        store(machine, "bearing_temp", [float(i) for i in range(25)])
        items, pages = all_pages(
            reader_client, READINGS_URL, {"machine": "m1", "sensor": "bearing_temp", "page_size": 10}
        )
        assert pages == 3
        assert [i["value"] for i in items] == [float(i) for i in reversed(range(25))]

    @pytest.mark.parametrize("params", [{"sensor": "bearing_temp"}, {}])
    def test_previous_walks_back_page_by_page(self, reader_client, machine, params):
        store(machine, "bearing_temp", [float(i) for i in range(10)])
        store(machine, "oil_pressure", [float(i) for i in range(10)])
        pages = [reader_client.get(READINGS_URL, {"machine": "m1", "page_size": 3, **params}).json()]
        while pages[-1]["next"]:
            pages.append(reader_client.get(pages[-1]["next"]).json())
        assert pages[0]["previous"] is None
        back = pages[-1]
        for expected in reversed(pages[:-1]):
            back = reader_client.get(back["previous"]).json()
            assert back["results"] == expected["results"]
        assert back["previous"] is None

    def test_a_cursor_is_stable_while_new_readings_arrive(self, reader_client, machine):
        store(machine, "bearing_temp", [float(i) for i in range(10)])
        first = reader_client.get(READINGS_URL, {"machine": "m1", "page_size": 4}).json()
        store(machine, "bearing_temp", [100.0, 101.0], start=T0 + timedelta(hours=1))
        second = reader_client.get(first["next"]).json()
        assert [r["value"] for r in first["results"]] == [9.0, 8.0, 7.0, 6.0]
        assert [r["value"] for r in second["results"]] == [5.0, 4.0, 3.0, 2.0]

    def test_a_machine_without_readings_is_an_empty_page(self, reader_client, machine):
        response = reader_client.get(READINGS_URL, {"machine": "m1"})
        assert response.status_code == 200
        assert response.json() == {"next": None, "previous": None, "results": []}

    @pytest.mark.parametrize(
        "token",
        [
            "p=not-a-date",
            "t=not-a-date&s=1&r=0",
            "t=2026-03-01T12:00:00&s=1&r=0",
            "t=0001-01-01T00:00:00%2B05:00&s=1&r=0",
            "t=2026-03-01T12:00:00%2B00:00&s=99999999999999999999&r=0",
            "t=2026-03-01T12:00:00%2B00:00&s=1&r=2",
        ],
    )
    def test_a_tampered_cursor_is_404(self, reader_client, stored, token):
        cursor = base64.b64encode(token.encode()).decode()
        response = reader_client.get(READINGS_URL, {"machine": "m1", "cursor": cursor})
        assert response.status_code == 404
        assert response.json() == {"detail": "Invalid cursor"}

    def test_a_cursor_that_is_not_base64_is_404(self, reader_client, stored):
        response = reader_client.get(READINGS_URL, {"machine": "m1", "cursor": "%%%"})
        assert response.status_code == 404
        assert response.json() == {"detail": "Invalid cursor"}


class TestReadingsBadParams:
    def test_machine_is_required(self, reader_client, stored):
        response = reader_client.get(READINGS_URL)
        assert response.status_code == 400
        assert response.json() == {"machine": ["This field is required."]}

    @pytest.mark.parametrize("param", ["from", "to"])
    def test_unparsable_datetime(self, reader_client, stored, param):
        response = reader_client.get(READINGS_URL, {"machine": "m1", param: "last tuesday"})
        assert response.status_code == 400
        assert list(response.json()) == [param]

    def test_from_must_be_before_to(self, reader_client, stored):
        params = {"machine": "m1", "from": ts(T0), "to": ts(T0)}
        response = reader_client.get(READINGS_URL, params)
        assert response.status_code == 400
        assert response.json() == {"to": ["Must be later than `from`."]}

    def test_unknown_machine_is_404(self, reader_client, stored):
        response = reader_client.get(READINGS_URL, {"machine": "nope"})
        assert response.status_code == 404
        assert response.json() == {"detail": "Machine 'nope' not found."}

    def test_unknown_sensor_is_404(self, reader_client, stored):
        response = reader_client.get(READINGS_URL, {"machine": "m1", "sensor": "nope"})
        assert response.status_code == 404
        assert response.json() == {"detail": "Sensor 'nope' not found on machine 'm1'."}


class TestSensorDataIsolation:
    def test_another_tenants_machine_by_id_is_404(self, reader_client, stored, other_machine):
        readings_bulk_insert(
            tenant_id=other_machine.tenant_id, rows=[(other_machine.sensors.get(key="bearing_temp").pk, T0, 99.0)]
        )
        for url in (READINGS_URL, LATEST_URL):
            response = reader_client.get(url, {"machine": str(other_machine.id)})
            assert response.status_code == 404
            assert response.json() == {"detail": f"Machine '{other_machine.id}' not found."}

    def test_the_same_external_id_means_the_callers_own_machine(self, other_tenant_key_client, stored, other_machine):
        readings_bulk_insert(
            tenant_id=other_machine.tenant_id, rows=[(other_machine.sensors.get(key="bearing_temp").pk, T0, 99.0)]
        )
        results = other_tenant_key_client.get(READINGS_URL, {"machine": "m1"}).json()["results"]
        assert [(r["machine_id"], r["value"]) for r in results] == [(str(other_machine.id), 99.0)]
        latest = other_tenant_key_client.get(LATEST_URL, {"machine": "m1"}).json()
        assert [(r["machine_id"], r["value"]) for r in latest] == [(str(other_machine.id), 99.0)]


class TestUnits:
    def test_a_users_preferences_convert_temperature_pressure_and_vibration(self, viewer_client, viewer_user, stored):
        UnitPreference.objects.create(user=viewer_user, temperature="fahrenheit", pressure="psi", vibration="in_s")
        latest = viewer_client.get(LATEST_URL, {"machine": "m1"}).json()
        assert {r["sensor"]: (r["value"], r["unit"]) for r in latest} == {
            "bearing_temp": (pytest.approx(22.0 * 9 / 5 + 32), "fahrenheit"),
            "oil_pressure": (pytest.approx(2.0 * 14.5037738), "psi"),
            "spindle_vib": (pytest.approx(1.0), "in_s"),
            "motor_current": (5.5, "A"),
            "door_count": (3.0, None),
        }

    def test_kelvin_and_kpa(self, viewer_client, viewer_user, stored):
        UnitPreference.objects.create(user=viewer_user, temperature="kelvin", pressure="kpa")
        results = viewer_client.get(READINGS_URL, {"machine": "m1", "sensor": "bearing_temp"}).json()["results"]
        assert (results[0]["value"], results[0]["unit"]) == (pytest.approx(295.15), "kelvin")
        results = viewer_client.get(READINGS_URL, {"machine": "m1", "sensor": "oil_pressure"}).json()["results"]
        assert (results[0]["value"], results[0]["unit"]) == (pytest.approx(200.0), "kpa")

    def test_users_without_preferences_get_the_defaults(self, viewer_client, stored):
        latest = viewer_client.get(LATEST_URL, {"machine": "m1"}).json()
        assert {r["sensor"]: r["unit"] for r in latest}["bearing_temp"] == "celsius"

    def test_api_keys_get_canonical_units(self, reader_client, viewer_user, stored):
        UnitPreference.objects.create(user=viewer_user, temperature="fahrenheit")
        latest = reader_client.get(LATEST_URL, {"machine": "m1"}).json()
        assert {r["sensor"]: (r["value"], r["unit"]) for r in latest}["bearing_temp"] == (22.0, "celsius")

    def test_preferences_are_per_user(self, viewer_client, viewer_user, admin_client, stored):
        UnitPreference.objects.create(user=viewer_user, temperature="fahrenheit")
        mine = viewer_client.get(LATEST_URL, {"machine": "m1"}).json()
        theirs = admin_client.get(LATEST_URL, {"machine": "m1"}).json()
        assert mine[0]["unit"] == "fahrenheit"
        assert theirs[0]["unit"] == "celsius"


class TestLatest:
    def test_the_latest_reading_of_each_sensor_by_key(self, reader_client, stored):
        response = reader_client.get(LATEST_URL, {"machine": "m1"})
        assert response.status_code == 200
        assert response.json() == [
            {"machine_id": str(stored.id), "sensor": key, "ts": ts(T0 + timedelta(minutes=m)), "value": v, "unit": u}
            for key, m, v, u in [
                ("bearing_temp", 2, 22.0, "celsius"),
                ("door_count", 0, 3.0, None),
                ("motor_current", 0, 5.5, "A"),
                ("oil_pressure", 1, 2.0, "bar"),
                ("spindle_vib", 0, 25.4, "mm_s"),
            ]
        ]

    def test_one_query_for_the_readings_whatever_their_number(self, reader_client, machine):
        reader_client.get(LATEST_URL, {"machine": "m1"})  # records the key's last_used_at
        with CaptureQueriesContext(connection) as few:
            reader_client.get(LATEST_URL, {"machine": "m1"})
        store(machine, "bearing_temp", [float(i) for i in range(500)])
        store(machine, "oil_pressure", [float(i) for i in range(500)])
        with CaptureQueriesContext(connection) as many:
            response = reader_client.get(LATEST_URL, {"machine": "m1"})
        assert [r["value"] for r in response.json()] == [499.0, 499.0]
        # The key, the machine, its sensors, the latest readings.
        assert len(few) == len(many) == 4

    def test_machine_is_required(self, reader_client):
        response = reader_client.get(LATEST_URL)
        assert response.status_code == 400
        assert response.json() == {"machine": ["This field is required."]}

    def test_unknown_machine_is_404(self, reader_client, machine):
        response = reader_client.get(LATEST_URL, {"machine": "nope"})
        assert response.status_code == 404
        assert response.json() == {"detail": "Machine 'nope' not found."}


class TestAggregate:
    @pytest.fixture
    def hour_of_readings(self, machine):
        # 0..59 once a minute from T0, then 100 at T0 + 1h.
        store(machine, "bearing_temp", [float(i) for i in range(60)])
        store(machine, "bearing_temp", [100.0], start=T0 + timedelta(hours=1))
        rollups_build()  # what the beat job does next (T0 is past the raw window)
        return machine

    def test_min_max_avg_count_per_bucket(self, reader_client, hour_of_readings):
        params = {
            "machine": "m1",
            "sensor": "bearing_temp",
            "bucket": "15m",
            "from": ts(T0),
            "to": ts(T0 + timedelta(hours=2)),
        }
        response = reader_client.get(AGGREGATE_URL, params)
        assert response.status_code == 200
        assert response.json() == {
            "machine_id": str(hour_of_readings.id),
            "sensor": "bearing_temp",
            "unit": "celsius",
            "bucket": "15m",
            "from": ts(T0),
            "to": ts(T0 + timedelta(hours=2)),
            "buckets": [
                {"start": ts(T0), "min": 0.0, "max": 14.0, "avg": 7.0, "count": 15, "source": "raw"},
                {
                    "start": ts(T0 + timedelta(minutes=15)),
                    "min": 15.0,
                    "max": 29.0,
                    "avg": 22.0,
                    "count": 15,
                    "source": "raw",
                },
                {
                    "start": ts(T0 + timedelta(minutes=30)),
                    "min": 30.0,
                    "max": 44.0,
                    "avg": 37.0,
                    "count": 15,
                    "source": "raw",
                },
                {
                    "start": ts(T0 + timedelta(minutes=45)),
                    "min": 45.0,
                    "max": 59.0,
                    "avg": 52.0,
                    "count": 15,
                    "source": "raw",
                },
                {
                    "start": ts(T0 + timedelta(hours=1)),
                    "min": 100.0,
                    "max": 100.0,
                    "avg": 100.0,
                    "count": 1,
                    "source": "raw",
                },
            ],
        }

    @pytest.mark.parametrize(("bucket", "counts"), [("1h", [60, 1]), ("1d", [61]), ("5m", [5] * 12 + [1])])
    def test_other_buckets(self, reader_client, hour_of_readings, bucket, counts):
        params = {
            "machine": "m1",
            "sensor": "bearing_temp",
            "bucket": bucket,
            "from": ts(T0),
            "to": ts(T0 + timedelta(hours=2)),
        }
        buckets = reader_client.get(AGGREGATE_URL, params).json()["buckets"]
        assert [b["count"] for b in buckets] == counts

    def test_one_minute_buckets_hold_one_reading_each(self, reader_client, hour_of_readings):
        params = {
            "machine": "m1",
            "sensor": "bearing_temp",
            "bucket": "1m",
            "from": ts(T0),
            "to": ts(T0 + timedelta(minutes=3)),
        }
        buckets = reader_client.get(AGGREGATE_URL, params).json()["buckets"]
        assert [(b["start"], b["avg"], b["count"]) for b in buckets] == [
            (ts(T0 + timedelta(minutes=i)), float(i), 1) for i in range(3)
        ]

    def test_values_in_the_users_units(self, viewer_client, viewer_user, hour_of_readings):
        UnitPreference.objects.create(user=viewer_user, temperature="fahrenheit")
        params = {
            "machine": "m1",
            "sensor": "bearing_temp",
            "bucket": "1h",
            "from": ts(T0),
            "to": ts(T0 + timedelta(hours=1)),
        }
        body = viewer_client.get(AGGREGATE_URL, params).json()
        assert body["unit"] == "fahrenheit"
        assert body["buckets"] == [
            {
                "start": ts(T0),
                "min": 32.0,
                "max": pytest.approx(59 * 1.8 + 32),
                "avg": pytest.approx(29.5 * 1.8 + 32),
                "count": 60,
                # T0 is older than the professional tier's 90 days: past the raw cutoff.
                "source": "rollup",
            }
        ]

    def test_defaults_to_the_last_24_hours(self, reader_client, hour_of_readings):
        body = reader_client.get(AGGREGATE_URL, {"machine": "m1", "sensor": "bearing_temp", "bucket": "1h"}).json()
        assert parse_datetime(body["to"]) - parse_datetime(body["from"]) == timedelta(hours=24)
        assert body["buckets"] == []  # the fixture's readings are older

    @pytest.mark.parametrize(
        ("params", "errors"),
        [
            ({"sensor": "bearing_temp", "bucket": "1h"}, {"machine": ["This field is required."]}),
            ({"machine": "m1", "bucket": "1h"}, {"sensor": ["This field is required."]}),
            ({"machine": "m1", "sensor": "bearing_temp"}, {"bucket": ["This field is required."]}),
            ({"machine": "m1", "sensor": "bearing_temp", "bucket": "2h"}, {"bucket": ['"2h" is not a valid choice.']}),
            (
                {
                    "machine": "m1",
                    "sensor": "bearing_temp",
                    "bucket": "1m",
                    "from": "2026-01-01T00:00:00Z",
                    "to": "2026-02-01T00:00:00Z",
                },
                {"bucket": ["At most 10000 buckets per request; use a wider bucket or a shorter range."]},
            ),
            (
                {"machine": "m1", "sensor": "bearing_temp", "bucket": "1h", "from": "2999-01-01T00:00:00Z"},
                {"from": ["Must be earlier than `to` (default: now)."]},
            ),
        ],
    )
    def test_bad_params_are_400(self, reader_client, machine, params, errors):
        response = reader_client.get(AGGREGATE_URL, params)
        assert response.status_code == 400
        assert response.json() == errors

    def test_unknown_sensor_is_404(self, reader_client, machine):
        response = reader_client.get(AGGREGATE_URL, {"machine": "m1", "sensor": "nope", "bucket": "1h"})
        assert response.status_code == 404
        assert response.json() == {"detail": "Sensor 'nope' not found on machine 'm1'."}


class TestSensorDataAccess:
    @pytest.mark.parametrize("url", [READINGS_URL, LATEST_URL, AGGREGATE_URL])
    def test_a_key_without_read_sensors_is_refused(self, key_client, machine, url):
        response = key_client.get(url, {"machine": "m1", "sensor": "bearing_temp", "bucket": "1h"})
        assert response.status_code == 403
        assert response.json() == {"detail": missing_scope_message("read:sensors")}

    def test_read_machines_alone_is_not_enough(self, make_api_key, machine):
        client = client_for_key(make_api_key(scopes=["read:machines"]).secret)
        response = client.get(READINGS_URL, {"machine": "m1"})
        assert response.status_code == 403
        assert response.json() == {"detail": missing_scope_message("read:sensors")}

    @pytest.mark.parametrize("client_fixture", ["admin_client", "operator_client", "viewer_client"])
    def test_any_role_may_read(self, request, client_fixture, stored):
        response = request.getfixturevalue(client_fixture).get(READINGS_URL, {"machine": "m1"})
        assert response.status_code == 200
        assert len(response.json()["results"]) == 8

    @pytest.mark.parametrize("url", [READINGS_URL, LATEST_URL, AGGREGATE_URL])
    def test_no_credentials_is_401(self, api_client, url):
        response = api_client.get(url, {"machine": "m1"})
        assert response.status_code == 401
        assert set(response.json()) == {"detail"}
