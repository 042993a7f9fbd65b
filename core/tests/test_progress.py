"""Long commands show progress on a terminal and end with one summary line, on a terminal or not."""

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.caller import Caller
from core.progress import Progress

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    """What a command's stderr is when it runs in a terminal."""

    def isatty(self) -> bool:
        return True


class TestProgress:
    def test_draws_a_bar_on_a_terminal(self):
        terminal = Terminal()
        with Progress(stderr=terminal, label="Copying", total=2500, unit="rows") as progress:
            for _ in progress.counting(range(2500), every=1000):
                pass
        assert progress.count == 2500
        drawn = terminal.getvalue()
        assert "Copying" in drawn and "2500/2500" in drawn and "rows" in drawn

    def test_draws_nothing_when_not_on_a_terminal(self):
        piped = io.StringIO()
        with Progress(stderr=piped, label="Copying", total=3) as progress:
            progress.advance(3)
        assert piped.getvalue() == ""
        assert progress.count == 3


class TestRunRetentionProgress:
    @pytest.fixture
    def old_reading(self, tenant):
        from telemetry.models import SensorReading
        from telemetry.tests.factories import MachineFactory, SensorFactory

        sensor = SensorFactory(machine=MachineFactory(tenant=tenant))
        SensorReading.objects.create(
            tenant_id=tenant.pk, sensor=sensor, ts=timezone.now() - timedelta(days=400), value=1
        )

    def test_a_bar_over_tenants_on_a_terminal(self, old_reading, tenant):
        out, terminal = io.StringIO(), Terminal()
        call_command("run_retention", stdout=out, stderr=terminal)
        assert "Retention" in terminal.getvalue() and "1/1" in terminal.getvalue()
        assert re.search(
            r"^Retention: 1 tenant\(s\), deleted 1 readings and 0 heartbeats, 0 failed, in \d+\.\d s\.$",
            out.getvalue(),
            re.M,
        )

    def test_only_the_summary_when_piped(self, old_reading):
        out, err = io.StringIO(), io.StringIO()
        call_command("run_retention", stdout=out, stderr=err)
        assert err.getvalue() == ""
        assert out.getvalue().splitlines()[-1].startswith("Retention: 1 tenant(s), deleted 1 readings")


class TestSeedDemoProgress:
    def test_a_bar_over_readings_on_a_terminal_and_a_summary(self):
        out, terminal = io.StringIO(), Terminal()
        call_command("seed_demo", stdout=out, stderr=terminal)
        total = 12 * (7 * 24 * 60 + 1)
        assert f"{total}/{total}" in terminal.getvalue() and "Seeding readings" in terminal.getvalue()
        assert re.search(rf"^Seeded 3 machine\(s\) and {total} readings in \d+\.\d s\.$", out.getvalue(), re.M)

    def test_only_the_summary_when_piped(self):
        out, err = io.StringIO(), io.StringIO()
        call_command("seed_demo", stdout=out, stderr=err)
        assert err.getvalue() == ""
        assert "Seeded 3 machine(s) and" in out.getvalue()


class TestNotifyApiKeysProgress:
    @pytest.fixture
    def endpoint(self, tenant, settings):
        from webhooks.services import webhook_endpoint_set

        settings.WEBHOOK_ALLOW_LOOPBACK = True
        webhook_endpoint_set(
            by=Caller.system(tenant_id=tenant.pk), url="http://127.0.0.1:9/hook"
        )  # stored only; nothing is sent

    def test_a_bar_over_tenants_on_a_terminal_and_a_summary(self, endpoint):
        out, terminal = io.StringIO(), Terminal()
        call_command("notify_api_keys", stdout=out, stderr=terminal)
        assert "Notifying" in terminal.getvalue() and "1tenants" in terminal.getvalue().replace(" ", "")
        assert re.search(r"^sent 0 expiring and 0 unused notices \(1 tenant\(s\), \d+\.\d s\)$", out.getvalue(), re.M)

    def test_only_the_summary_when_piped(self, endpoint):
        out, err = io.StringIO(), io.StringIO()
        call_command("notify_api_keys", stdout=out, stderr=err)
        assert err.getvalue() == ""
        assert out.getvalue().splitlines()[-1].startswith("sent 0 expiring and 0 unused notices (1 tenant(s), ")


@pytest.mark.postgres
class TestReadingsPartitionsProgress:
    """Partition maintenance: a bar over the partitions looked at, then one summary line."""

    @pytest.fixture
    def expired_partition(self, tenant):
        from telemetry import partitions
        from telemetry.models import SensorReading
        from telemetry.services import readings_bulk_insert
        from telemetry.tests.factories import MachineFactory, SensorFactory

        # Far older than any tier keeps (and than any rollup cursor could leave out).
        day = timezone.now() - timedelta(days=3000)
        created = partitions.partitions_ensure(since=day, through=day)
        sensor = SensorFactory(machine=MachineFactory(tenant=tenant))
        readings_bulk_insert(tenant_id=tenant.pk, rows=[(sensor.pk, day, 1.0), (sensor.pk, day, 2.0)])
        assert SensorReading.objects.filter(tenant_id=tenant.pk).count() == 1
        return created[0]

    def _ranges(self):
        from telemetry import partitions

        return sum(1 for p in partitions.partition_list() if p.start is not None)

    def test_a_bar_over_partitions_on_a_terminal_and_a_summary(self, expired_partition):
        total = self._ranges()
        out, terminal = io.StringIO(), Terminal()
        call_command("readings_partitions", "--drop-expired", stdout=out, stderr=terminal)
        assert "Partitions" in terminal.getvalue() and f"{total}/{total}" in terminal.getvalue()
        assert f"dropped {expired_partition} (1 readings)" in out.getvalue()
        assert re.search(
            rf"^Partitions: 0 created, 1 dropped \(1 readings\), {total - 1} kept, in \d+\.\d s\.$",
            out.getvalue(),
            re.M,
        )

    def test_only_the_summary_when_piped(self, expired_partition):
        out, err = io.StringIO(), io.StringIO()
        call_command("readings_partitions", "--drop-expired", stdout=out, stderr=err)
        assert err.getvalue() == ""
        assert out.getvalue().splitlines()[-1].startswith("Partitions: 0 created, 1 dropped (1 readings), ")

    def test_without_drops_the_summary_says_what_was_created(self):
        out, err = io.StringIO(), io.StringIO()
        call_command("readings_partitions", stdout=out, stderr=err)
        assert err.getvalue() == ""
        assert out.getvalue().splitlines()[-1] == "Partitions: 0 created."
