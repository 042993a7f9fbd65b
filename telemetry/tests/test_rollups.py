"""Rollups: built incrementally from new readings (late backfills included), exact, and on a beat."""

from datetime import UTC, datetime, timedelta

import pytest

from core.caller import Caller
from telemetry import tasks
from telemetry.models import RollupCursor, SensorRollup
from telemetry.rollups import rollups_build
from telemetry.services import readings_bulk_insert, readings_ingest
from telemetry.tests.factories import MachineFactory, SensorFactory

pytestmark = pytest.mark.django_db

HOUR = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def sensor(tenant):
    return SensorFactory(machine=MachineFactory(tenant=tenant, external_id="press-1"), key="temp")


def ingest(tenant, *pairs):
    readings = [{"machine": "press-1", "sensor": "temp", "ts": ts.isoformat(), "value": v} for ts, v in pairs]
    return readings_ingest(by=Caller.system(tenant_id=tenant.pk), readings=readings)


def buckets(sensor, bucket):
    rows = SensorRollup.objects.filter(sensor=sensor, bucket=bucket).order_by("start")
    return [(r.start, r.min, r.max, r.avg, r.count) for r in rows]


class TestBuild:
    def test_hour_and_day_buckets_of_one_sensor(self, tenant, sensor):
        ingest(tenant, (HOUR, 10.0), (HOUR + timedelta(minutes=59), 20.0), (HOUR + timedelta(hours=1), 5.0))

        rollups_build()

        assert buckets(sensor, 3600) == [(HOUR, 10.0, 20.0, 15.0, 2), (HOUR + timedelta(hours=1), 5.0, 5.0, 5.0, 1)]
        day = HOUR.replace(hour=0)
        assert buckets(sensor, 86400) == [(day, 5.0, 20.0, 35.0 / 3, 3)]
        assert all(r.tenant_id == tenant.pk for r in SensorRollup.objects.all())

    def test_a_late_backfill_is_merged_into_its_old_bucket(self, tenant, sensor):
        ingest(tenant, (HOUR, 10.0))
        rollups_build()

        ingest(tenant, (HOUR + timedelta(minutes=30), 30.0), (HOUR - timedelta(days=40), 1.0))
        rollups_build()

        assert buckets(sensor, 3600) == [(HOUR - timedelta(days=40), 1.0, 1.0, 1.0, 1), (HOUR, 10.0, 30.0, 20.0, 2)]

    def test_each_reading_counts_once_however_often_it_runs(self, tenant, sensor):
        ingest(tenant, (HOUR, 10.0))
        first = rollups_build()
        ingest(tenant, (HOUR, 10.0))  # a resent reading: not stored again

        assert rollups_build() == first
        assert rollups_build() == first
        assert buckets(sensor, 3600) == [(HOUR, 10.0, 10.0, 10.0, 1)]
        assert RollupCursor.objects.get().built_through == first


class TestSchedule:
    def test_a_beat_job_builds_them_every_minute(self, settings):
        entry = settings.CELERY_BEAT_SCHEDULE["telemetry-rollups"]
        assert (entry["task"], entry["schedule"]) == ("telemetry.rollups_build", 60.0)
        assert tasks.rollups_build.name == "telemetry.rollups_build"

    def test_the_task_builds(self, tenant, sensor):
        ingest(tenant, (HOUR, 10.0))

        tasks.rollups_build()

        assert buckets(sensor, 3600) == [(HOUR, 10.0, 10.0, 10.0, 1)]


AGGREGATE_URL = "/api/v1/sensor-data/aggregate"


class TestAggregateFromRollups:
    """Over HTTP: 1h/1d buckets past the raw cutoff come from the rollups, after retention removed the raw rows."""

    @pytest.fixture
    def days_of_readings(self, tenant, sensor):
        # Two readings a day, 100 to 80 days ago, at 06:00 and 18:00 (values 1 and 3: avg 2).
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        pairs = []
        for days in range(100, 79, -1):
            day = today - timedelta(days=days)
            pairs += [(day + timedelta(hours=6), 1.0), (day + timedelta(hours=18), 3.0)]
        readings_bulk_insert(tenant_id=tenant.pk, rows=[(sensor.pk, ts, value) for ts, value in pairs])
        rollups_build()  # the beat job's pass
        return today

    def test_buckets_past_the_cutoff_say_rollup_and_survive_retention(self, tenant, days_of_readings, reader_client):
        from retention.models import RetentionRun
        from retention.services import retention_run_execute, retention_run_request

        today = days_of_readings
        params = {
            "machine": "press-1",
            "sensor": "temp",
            "bucket": "1d",
            "from": (today - timedelta(days=120)).isoformat(),
            "to": today.isoformat(),
        }
        before = reader_client.get(AGGREGATE_URL, params).json()["buckets"]
        run, _ = retention_run_request(by=Caller.system(tenant_id=tenant.pk), trigger=RetentionRun.Trigger.MANUAL)
        run = retention_run_execute(run_id=run.pk)

        after = reader_client.get(AGGREGATE_URL, params).json()["buckets"]

        assert run.readings_deleted > 0  # the professional tier keeps 90 days
        assert after == before
        assert len(after) == 21
        assert {(b["min"], b["max"], b["avg"], b["count"]) for b in after} == {(1.0, 3.0, 2.0, 2)}
        # The day holding the cutoff (90 days ago, now) is past it in part: a rollup.
        sources = [b["source"] for b in after]
        assert sources == ["rollup"] * 11 + ["raw"] * 10

    def test_hourly_buckets_and_the_schema_of_source(self, tenant, days_of_readings, reader_client):
        today = days_of_readings
        params = {
            "machine": "press-1",
            "sensor": "temp",
            "bucket": "1h",
            "from": (today - timedelta(days=100)).isoformat(),
            "to": (today - timedelta(days=99)).isoformat(),
        }
        buckets = reader_client.get(AGGREGATE_URL, params).json()["buckets"]

        assert [(b["avg"], b["count"], b["source"]) for b in buckets] == [(1.0, 1, "rollup"), (3.0, 1, "rollup")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestInFlightIngests:
    """A pass never waits for an ingest still in flight, nor reads past an id it may still fill in."""

    @pytest.fixture
    def other(self):
        import psycopg
        from django.db import connection

        params = connection.get_connection_params()
        dsn = {k: v for k, v in params.items() if k in ("dbname", "host", "port", "user", "password")}
        conn = psycopg.connect(**dsn)  # a transaction of its own, open until commit()
        yield conn
        conn.close()

    def insert(self, conn, tenant, sensor, ts):
        return conn.execute(
            "INSERT INTO telemetry_sensorreading (tenant_id, sensor_id, ts, value) VALUES (%s, %s, %s, 1.0) "
            "RETURNING id",
            [tenant.pk, sensor.pk, ts],
        ).fetchone()[0]

    def total(self, sensor):
        return sum(r.count for r in SensorRollup.objects.filter(sensor=sensor, bucket=SensorRollup.Bucket.HOUR))

    def test_a_pass_does_not_wait_and_stops_below_an_uncommitted_id(self, tenant, sensor, other):
        import time

        ingest(tenant, (HOUR, 1.0))
        in_flight = self.insert(other, tenant, sensor, HOUR + timedelta(minutes=1))  # not committed
        ingest(tenant, (HOUR + timedelta(minutes=2), 3.0))  # a higher id, committed

        started = time.monotonic()
        built = rollups_build()
        assert time.monotonic() - started < 1.0
        assert built < in_flight  # the committed reading above it waits too
        assert self.total(sensor) <= 1

        # Still in flight at the next pass: still nothing past it, still no wait.
        started = time.monotonic()
        assert rollups_build() < in_flight
        assert time.monotonic() - started < 1.0

        other.commit()
        rollups_build()  # its writer gone: up to what the last pass saw
        rollups_build()
        assert self.total(sensor) == 3
        assert RollupCursor.objects.get().built_through >= in_flight + 1
        rollups_build()
        assert self.total(sensor) == 3  # each reading once

    def test_an_aborted_writer_does_not_hold_the_rollups_back(self, tenant, sensor, other):
        self.insert(other, tenant, sensor, HOUR)
        ingest(tenant, (HOUR + timedelta(minutes=2), 3.0))
        rollups_build()
        other.rollback()
        rollups_build()
        rollups_build()
        assert self.total(sensor) == 1

    def test_a_writer_of_another_table_does_not_hold_the_rollups_back(self, tenant, sensor, other):
        other.execute(
            "INSERT INTO core_throttlecounter (key, count, window_ends_at) VALUES ('rollups-test', 1, 0)"
        )  # not committed: a write, but not of readings
        ingest(tenant, (HOUR, 1.0))
        rollups_build()
        assert self.total(sensor) == 1
        other.rollback()

    def test_a_bounded_wait_takes_a_writer_that_ends_in_time(self, tenant, sensor, other):
        import threading

        ingest(tenant, (HOUR, 1.0))
        self.insert(other, tenant, sensor, HOUR + timedelta(minutes=1))
        threading.Timer(0.3, other.commit).start()
        rollups_build(wait_seconds=5)
        assert self.total(sensor) == 2

    def test_a_pass_that_finds_another_building_returns_at_once(self, tenant, sensor, other):
        import time

        ingest(tenant, (HOUR, 1.0))
        rollups_build()
        ingest(tenant, (HOUR + timedelta(minutes=1), 2.0))
        other.execute("SELECT 1 FROM telemetry_rollupcursor WHERE name = 'readings' FOR UPDATE")
        started = time.monotonic()
        built = rollups_build()
        assert time.monotonic() - started < 1.0
        assert built == RollupCursor.objects.get().built_through
        other.rollback()
        rollups_build()
        assert self.total(sensor) == 2
