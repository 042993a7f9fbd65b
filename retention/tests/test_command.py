import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from retention.models import RetentionRun
from retention.tests.factories import RetentionRunFactory
from retention.tests.helpers import NOW, heartbeat_times, reading_times

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

CUTOFF = NOW - timedelta(days=90)  # the professional tier of the `tenant` fixture
OTHER_CUTOFF = NOW - timedelta(days=7)  # other_tenant goes on the free tier below


def run_retention(*args) -> str:
    out = StringIO()
    call_command("run_retention", *args, stdout=out)
    return out.getvalue()


def summary(text: str) -> str:
    """The summary line's pattern (its duration varies)."""
    return re.escape(text).replace("TIME", r"\d+\.\d")


@pytest.fixture
def data(tenant, other_tenant, sensor, other_sensor, api_key, add_readings, add_heartbeats):
    other_tenant.tier = "free"
    other_tenant.save()
    add_readings(sensor, [CUTOFF - timedelta(days=1), CUTOFF - timedelta(seconds=1), CUTOFF])
    add_heartbeats(api_key.api_key, [CUTOFF - timedelta(days=3), NOW])
    add_readings(other_sensor, [OTHER_CUTOFF - timedelta(hours=1), NOW])


class TestRunRetention:
    def test_every_tenant_prints_cutoff_and_rows_deleted(self, data, tenant, other_tenant):
        output = run_retention()

        *lines, last = output.splitlines()
        assert lines == [
            f"Acme Plant ({tenant.pk}): cutoff {CUTOFF.isoformat()} (90 days), deleted 2 readings, 1 heartbeats",
            f"Other Works ({other_tenant.pk}): cutoff {OTHER_CUTOFF.isoformat()} (7 days), "
            "deleted 1 readings, 0 heartbeats",
        ]
        assert re.fullmatch(
            summary("Retention: 2 tenant(s), deleted 3 readings and 1 heartbeats, 0 failed, in TIME s."), last
        )
        assert reading_times(tenant.pk) == [CUTOFF]
        assert heartbeat_times(tenant.pk) == [NOW]
        assert reading_times(other_tenant.pk) == [NOW]
        runs = RetentionRun.objects.order_by("tenant__name")
        assert [(r.trigger, r.status) for r in runs] == [("command", "succeeded")] * 2

    @pytest.mark.parametrize("how", ["name", "id"])
    def test_one_tenant_by_name_or_id(self, data, tenant, other_tenant, how):
        output = run_retention("--tenant", "acme plant" if how == "name" else str(tenant.pk))

        assert output.startswith(f"Acme Plant ({tenant.pk}): cutoff ")
        assert len(output.splitlines()) == 2  # and the summary line
        assert reading_times(tenant.pk) == [CUTOFF]
        assert len(reading_times(other_tenant.pk)) == 2

    def test_dry_run_counts_and_deletes_nothing(self, data, tenant, other_tenant):
        output = run_retention("--dry-run")

        *lines, last = output.splitlines()
        assert lines == [
            f"Acme Plant ({tenant.pk}): cutoff {CUTOFF.isoformat()} (90 days), "
            "would delete 2 readings, 1 heartbeats (dry run)",
            f"Other Works ({other_tenant.pk}): cutoff {OTHER_CUTOFF.isoformat()} (7 days), "
            "would delete 1 readings, 0 heartbeats (dry run)",
        ]
        pattern = "Retention: 2 tenant(s), would delete 3 readings and 1 heartbeats, 0 failed, in TIME s."
        assert re.fullmatch(summary(pattern), last)
        assert len(reading_times(tenant.pk)) == 3
        assert len(heartbeat_times(tenant.pk)) == 2
        assert len(reading_times(other_tenant.pk)) == 2
        assert not RetentionRun.objects.exists()

    def test_unknown_tenant_is_a_one_line_error(self, data):
        with pytest.raises(CommandError) as excinfo:
            run_retention("--tenant", "Nobody Inc")

        assert str(excinfo.value) == "No tenant with id or name 'Nobody Inc'."
        assert not RetentionRun.objects.exists()

    def test_tenant_with_an_active_run_is_skipped(self, data, tenant):
        active = RetentionRunFactory(tenant=tenant, status=RetentionRun.Status.RUNNING, updated_at=NOW)

        output = run_retention("--tenant", str(tenant.pk))

        first, last = output.splitlines()
        assert first == f"Acme Plant ({tenant.pk}): skipped, run {active.pk} is already running"
        assert re.fullmatch(
            summary("Retention: 1 tenant(s), deleted 0 readings and 0 heartbeats, 0 failed, in TIME s."), last
        )
        assert len(reading_times(tenant.pk)) == 3

    def test_a_failed_run_exits_non_zero(self, data, tenant, settings):
        settings.HALTLESS_TIERS = {"free": 7}

        out = StringIO()
        with pytest.raises(CommandError) as excinfo:
            call_command("run_retention", stdout=out)

        assert str(excinfo.value) == "Retention failed for 1 of 2 tenant(s)."
        run = RetentionRun.objects.get(tenant=tenant)
        assert out.getvalue().splitlines()[0] == (
            f"Acme Plant ({tenant.pk}): run {run.pk} failed: "
            "Tenant tier 'professional' has no retention window configured."
        )
        assert len(reading_times(tenant.pk)) == 3
