"""Rollups: built incrementally from new readings (late backfills included), exact, and on a beat."""

from datetime import UTC, datetime, timedelta

import pytest

from telemetry import tasks
from telemetry.models import RollupCursor, SensorRollup
from telemetry.rollups import rollups_build
from telemetry.services import readings_ingest
from telemetry.tests.factories import MachineFactory, SensorFactory

pytestmark = pytest.mark.django_db

HOUR = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def sensor(tenant):
    return SensorFactory(machine=MachineFactory(tenant=tenant, external_id="press-1"), key="temp")


def ingest(tenant, *pairs):
    readings = [{"machine": "press-1", "sensor": "temp", "ts": ts.isoformat(), "value": v} for ts, v in pairs]
    return readings_ingest(tenant_id=tenant.pk, readings=readings)


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
