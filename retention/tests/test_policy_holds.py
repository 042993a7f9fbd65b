"""Retention policy per tenant, legal holds and the preview: over HTTP, and what runs then delete."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from core.caller import Caller
from retention import policies
from retention.models import RetentionHold, RetentionPolicy, RetentionRun
from retention.services import retention_run_execute, retention_run_request
from retention.tests.helpers import reading_times
from telemetry.models import AgentHeartbeat, SensorReading, SensorRollup
from telemetry.rollups import rollups_build
from telemetry.tests.factories import MachineFactory, SensorFactory
from tenants.services import tenant_update
from tenants.tests.factories import TenantFactory

POLICY_URL = "/api/v1/settings/retention-policy"
HOLDS_URL = "/api/v1/settings/admin/retention/holds"
PREVIEW_URL = "/api/v1/settings/admin/retention/preview"

pytestmark = pytest.mark.django_db


def run_now(tenant) -> RetentionRun:
    run, created = retention_run_request(by=Caller.system(tenant_id=tenant.pk), trigger=RetentionRun.Trigger.MANUAL)
    assert created
    return retention_run_execute(run_id=run.pk)


def days_ago(*days: float) -> list:
    now = timezone.now()
    return [now - timedelta(days=d) for d in days]


def iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


class TestPolicyEndpoint:
    def test_defaults_follow_the_tier(self, viewer_client):
        response = viewer_client.get(POLICY_URL)

        assert response.status_code == 200
        # The `tenant` fixture is professional: 90 days raw, 730 days of rollups.
        assert response.json() == {"readings_days": 90, "heartbeats_days": 90, "rollups_days": 730}

    def test_admin_sets_windows_and_every_role_sees_them(self, admin_client, viewer_client, tenant):
        body = {"readings_days": 30, "heartbeats_days": 14, "rollups_days": None}

        response = admin_client.put(POLICY_URL, body, format="json")

        assert response.status_code == 200
        assert response.json() == {"readings_days": 30, "heartbeats_days": 14, "rollups_days": 730}
        assert viewer_client.get(POLICY_URL).json() == response.json()
        event = AuditEvent.objects.get(action="retention_policy.update")
        assert event.changes["after"] == body

    def test_above_the_tier_is_400_naming_the_limit(self, admin_client):
        response = admin_client.put(POLICY_URL, {"readings_days": 91, "rollups_days": 731}, format="json")

        assert response.status_code == 400
        assert response.json() == {
            "readings_days": ["At most 90 days: the professional tier's limit for readings."],
            "rollups_days": ["At most 730 days: the professional tier's limit for rollups."],
        }
        assert not RetentionPolicy.objects.exists()
        assert not AuditEvent.objects.filter(action="retention_policy.update").exists()

    @pytest.mark.parametrize("body", [{"readings_days": 0}, {"readings_days": "x"}, {"weeks": 3}])
    def test_bad_values_are_400(self, admin_client, body):
        assert admin_client.put(POLICY_URL, body, format="json").status_code == 400
        assert not RetentionPolicy.objects.exists()

    def test_non_admins_cannot_change_it(self, operator_client):
        response = operator_client.put(POLICY_URL, {"readings_days": 30}, format="json")
        assert response.status_code == 403
        assert response.json() == {"detail": "Only a tenant admin may do this."}
        assert not RetentionPolicy.objects.exists()

    def test_a_tier_change_clamps_explicit_values_and_is_audited(self, admin_client, tenant):
        admin_client.put(POLICY_URL, {"readings_days": 60, "rollups_days": 500, "heartbeats_days": 5}, format="json")

        tenant_update(by=Caller.system(tenant_id=tenant.pk), tenant=tenant, name=tenant.name, tier="starter")

        assert admin_client.get(POLICY_URL).json() == {"readings_days": 30, "heartbeats_days": 5, "rollups_days": 365}
        clamp = AuditEvent.objects.filter(action="retention_policy.update").order_by("-occurred_at", "-id").first()
        assert clamp.changes == {
            "clamped_to_tier": "starter",
            "readings_days": {"from": 60, "to": 30},
            "rollups_days": {"from": 500, "to": 365},
        }

    def test_runs_use_the_policy_and_show_each_cutoff(self, admin_client, tenant, sensor, add_readings):
        admin_client.put(POLICY_URL, {"readings_days": 30}, format="json")
        add_readings(sensor, days_ago(31, 29))

        run = run_now(tenant)

        assert (run.readings_deleted, run.retention_days) == (1, 30)
        item = admin_client.get(f"/api/v1/settings/admin/retention/runs/{run.pk}").json()
        assert set(item["cutoffs"]) == {"readings", "heartbeats", "rollups"}
        assert item["partitions_dropped"] == 0
        assert len(reading_times(tenant.pk)) == 1


@pytest.fixture
def press(tenant):
    return MachineFactory(tenant=tenant, external_id="press-1")


@pytest.fixture
def lathe(tenant):
    return MachineFactory(tenant=tenant, external_id="lathe-1")


class TestHoldEndpoints:
    def test_create_list_and_release(self, admin_client, admin_user, press):
        body = {"reason": "Litigation 2025-17", "machines": ["press-1"], "from": "2025-01-01T00:00:00Z"}

        created = admin_client.post(HOLDS_URL, body, format="json")

        assert created.status_code == 201
        hold = RetentionHold.objects.get()
        assert created.json() == {
            "id": str(hold.pk),
            "reason": "Litigation 2025-17",
            "machines": ["press-1"],
            "from": "2025-01-01T00:00:00Z",
            "to": None,
            "created_at": iso(hold.created_at),
            "created_by": str(admin_user.pk),
            "released_at": None,
        }
        assert admin_client.delete(f"{HOLDS_URL}/{hold.pk}").status_code == 204
        (listed,) = admin_client.get(HOLDS_URL).json()
        assert listed["id"] == str(hold.pk)
        assert listed["released_at"] is not None
        actions = list(AuditEvent.objects.filter(action__startswith="retention_hold").values_list("action", flat=True))
        assert sorted(actions) == ["retention_hold.create", "retention_hold.release"]

    def test_a_hold_on_every_machine_lists_machines_null(self, admin_client):
        body = {"reason": "Audit", "machines": None, "from": "2025-01-01T00:00:00Z", "to": "2025-02-01T00:00:00Z"}
        response = admin_client.post(HOLDS_URL, body, format="json")

        assert response.status_code == 201
        assert (response.json()["machines"], response.json()["to"]) == (None, "2025-02-01T00:00:00Z")

    @pytest.mark.parametrize(
        ("body", "errors"),
        [
            ({"from": "2025-01-01T00:00:00Z"}, {"reason": ["This field is required."]}),
            ({"reason": "  ", "from": "2025-01-01T00:00:00Z"}, {"reason": ["A hold needs a reason."]}),
            ({"reason": "x"}, {"from": ["This field is required."]}),
            (
                {"reason": "x", "from": "2025-02-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"},
                {"to": ["Must be after `from`."]},
            ),
            (
                {"reason": "x", "from": "2025-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"},
                {"to": ["Must be after `from`."]},
            ),
            (
                {"reason": "x", "from": "2025-01-01T00:00:00Z", "machines": ["press-1", "nope"]},
                {"machines": ["Unknown machine: nope."]},
            ),
            (
                {"reason": "x", "from": "2025-01-01T00:00:00Z", "machines": []},
                {"machines": ["Give at least one machine, or null for every machine."]},
            ),
            ({"reason": "x", "from": "2025-01-01T00:00:00Z", "until": "2025-02-01"}, {"until": ["Unknown field."]}),
        ],
    )
    def test_bad_holds_are_400_and_create_nothing(self, admin_client, press, body, errors):
        response = admin_client.post(HOLDS_URL, body, format="json")

        assert response.status_code == 400
        assert response.json() == errors
        assert not RetentionHold.objects.exists()

    def test_another_tenants_machine_is_unknown(self, admin_client, other_tenant):
        MachineFactory(tenant=other_tenant, external_id="their-press")
        body = {"reason": "x", "from": "2025-01-01T00:00:00Z", "machines": ["their-press"]}

        response = admin_client.post(HOLDS_URL, body, format="json")

        assert response.json() == {"machines": ["Unknown machine: their-press."]}

    def test_at_most_20_active_holds(self, admin_client):
        body = {"reason": "case", "from": "2025-01-01T00:00:00Z"}
        ids = [admin_client.post(HOLDS_URL, body, format="json").json()["id"] for _ in range(20)]

        refused = admin_client.post(HOLDS_URL, body, format="json")
        admin_client.delete(f"{HOLDS_URL}/{ids[0]}")
        again = admin_client.post(HOLDS_URL, body, format="json")

        assert refused.status_code == 400
        assert refused.json() == {"detail": "At most 20 active holds per tenant; release one first."}
        assert again.status_code == 201

    def test_another_tenants_hold_is_404(self, other_tenant_admin_client, admin_client):
        hold_id = admin_client.post(HOLDS_URL, {"reason": "x", "from": "2025-01-01T00:00:00Z"}, format="json").json()[
            "id"
        ]

        assert other_tenant_admin_client.delete(f"{HOLDS_URL}/{hold_id}").status_code == 404
        assert other_tenant_admin_client.get(HOLDS_URL).json() == []
        assert RetentionHold.objects.get().released_at is None

    def test_holds_are_for_admins(self, operator_client):
        assert operator_client.get(HOLDS_URL).status_code == 403
        body = {"reason": "x", "from": "2025-01-01T00:00:00Z"}
        assert operator_client.post(HOLDS_URL, body, format="json").status_code == 403


class TestHoldsKeepReadings:
    def test_a_hold_on_one_machine_keeps_exactly_its_rows_in_range(
        self, admin_client, tenant, press, lathe, add_readings
    ):
        press_temp, lathe_temp = SensorFactory(machine=press), SensorFactory(machine=lathe)
        times = days_ago(200, 150, 120, 100)
        add_readings(press_temp, times)
        add_readings(lathe_temp, times)
        body = {"reason": "claim", "machines": ["press-1"], "from": iso(times[1]), "to": iso(times[3])}
        admin_client.post(HOLDS_URL, body, format="json")

        run = run_now(tenant)

        # from is inclusive, to exclusive: the press keeps its readings at 150 and 120 days.
        kept = SensorReading.objects.filter(tenant=tenant).values_list("sensor_id", "ts").order_by("sensor_id", "ts")
        assert list(kept) == [(press_temp.pk, times[1]), (press_temp.pk, times[2])]
        assert run.readings_deleted == 6

    def test_a_hold_on_two_machines_keeps_both_and_no_third(self, admin_client, tenant, press, lathe, add_readings):
        mill = MachineFactory(tenant=tenant, external_id="mill-1")
        sensors = [SensorFactory(machine=machine) for machine in (press, lathe, mill)]
        for sensor in sensors:
            add_readings(sensor, days_ago(120))
        body = {"reason": "claim", "machines": ["press-1", "lathe-1"], "from": iso(days_ago(365)[0])}
        assert admin_client.post(HOLDS_URL, body, format="json").status_code == 201
        assert admin_client.get(PREVIEW_URL).json()["held"] == {"readings": 2}

        run = run_now(tenant)

        kept = SensorReading.objects.filter(tenant=tenant).values_list("sensor_id", flat=True).order_by("sensor_id")
        assert sorted(kept) == sorted([sensors[0].pk, sensors[1].pk])
        assert run.readings_deleted == 1

    def test_two_holds_each_keep_their_own_readings(self, admin_client, tenant, press, lathe, add_readings):
        press_temp, lathe_temp = SensorFactory(machine=press), SensorFactory(machine=lathe)
        times = days_ago(200, 120)
        add_readings(press_temp, times)
        add_readings(lathe_temp, times)
        # The press is held around 200 days ago, the lathe around 120: each keeps one reading.
        for machine, (start, end) in (("press-1", days_ago(210, 190)), ("lathe-1", days_ago(130, 110))):
            body = {"reason": "claim", "machines": [machine], "from": iso(start), "to": iso(end)}
            assert admin_client.post(HOLDS_URL, body, format="json").status_code == 201
        assert admin_client.get(PREVIEW_URL).json()["held"] == {"readings": 2}

        run = run_now(tenant)

        kept = SensorReading.objects.filter(tenant=tenant).values_list("sensor_id", "ts").order_by("sensor_id")
        assert list(kept) == [(press_temp.pk, times[0]), (lathe_temp.pk, times[1])]
        assert run.readings_deleted == 2

    def test_another_tenants_hold_keeps_none_of_ours(
        self, admin_client, other_tenant_admin_client, tenant, press, add_readings
    ):
        add_readings(SensorFactory(machine=press), days_ago(120))
        body = {"reason": "their case", "from": iso(days_ago(365)[0])}  # every machine, of their tenant
        assert other_tenant_admin_client.post(HOLDS_URL, body, format="json").status_code == 201
        assert admin_client.get(PREVIEW_URL).json()["held"] == {"readings": 0}

        assert run_now(tenant).readings_deleted == 1

    def test_holds_are_read_with_their_machines_in_two_queries(
        self, admin_client, tenant, press, lathe, django_assert_num_queries
    ):
        for machines in (["press-1"], ["lathe-1"], ["press-1", "lathe-1"], None):
            body = {"reason": "claim", "machines": machines, "from": iso(days_ago(365)[0])}
            assert admin_client.post(HOLDS_URL, body, format="json").status_code == 201

        with django_assert_num_queries(2):  # the holds, then the machines of all of them
            holds = policies.active_holds(tenant_id=tenant.pk)

        assert sorted(hold.machine_ids is None for hold in holds) == [False, False, False, True]

    def test_a_released_hold_keeps_nothing_at_the_next_run(self, admin_client, tenant, press, add_readings):
        add_readings(SensorFactory(machine=press), days_ago(120))
        hold_id = admin_client.post(HOLDS_URL, {"reason": "x", "from": iso(days_ago(365)[0])}, format="json").json()[
            "id"
        ]
        assert run_now(tenant).readings_deleted == 0

        admin_client.delete(f"{HOLDS_URL}/{hold_id}")

        assert run_now(tenant).readings_deleted == 1

    def test_every_delete_names_the_tenant(self, admin_client, tenant, other_tenant, press, add_readings, api_key):
        """Retention's DELETEs, captured: each is bounded by the running tenant's id."""
        add_readings(SensorFactory(machine=press), days_ago(800, 120, 1))
        theirs = SensorFactory(machine=MachineFactory(tenant=other_tenant))
        add_readings(theirs, days_ago(800, 120))
        AgentHeartbeat.objects.create(tenant=tenant, api_key=api_key.api_key, received_at=days_ago(120)[0])
        admin_client.post(
            HOLDS_URL, {"reason": "x", "machines": ["press-1"], "from": iso(days_ago(1)[0])}, format="json"
        )

        with CaptureQueriesContext(connection) as queries:
            run = run_now(tenant)

        deletes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("DELETE")]
        assert len(deletes) >= 3  # readings, heartbeats and rollups
        tenant_values = {str(tenant.pk), tenant.pk.hex}
        assert all('"tenant_id" = ' in sql and any(v in sql for v in tenant_values) for sql in deletes), deletes
        assert (run.readings_deleted, run.heartbeats_deleted, run.rollups_deleted) == (2, 1, 2)
        assert SensorReading.objects.filter(tenant=other_tenant).count() == 2


class TestPreview:
    def test_exact_counts_of_what_a_run_would_delete(self, admin_client, tenant, press, lathe, add_readings, api_key):
        press_temp = SensorFactory(machine=press)
        add_readings(press_temp, days_ago(800, 120, 100, 10))
        add_readings(SensorFactory(machine=lathe), days_ago(120))
        AgentHeartbeat.objects.create(tenant=tenant, api_key=api_key.api_key, received_at=days_ago(95)[0])
        rollups_build()
        admin_client.post(
            HOLDS_URL, {"reason": "x", "machines": ["press-1"], "from": iso(days_ago(130)[0])}, format="json"
        )

        response = admin_client.get(PREVIEW_URL)

        assert response.status_code == 200
        preview = response.json()
        assert preview["tier"] == "professional"
        assert set(preview["cutoffs"]) == {"readings", "heartbeats", "rollups"}
        # Expired: press at 800, 120, 100 and lathe at 120; the hold keeps the press's 120 and 100.
        # Rollups: the 800-day-old reading's hour and day buckets are past 730 days.
        assert preview["would_delete"] == {"readings": 2, "heartbeats": 1, "rollups": 2}
        assert preview["held"] == {"readings": 2}
        assert preview["next_scheduled_run"] is not None

        run = run_now(tenant)

        assert (run.readings_deleted, run.heartbeats_deleted, run.rollups_deleted) == (2, 1, 2)

    def test_a_planned_downgrade(self, admin_client, tenant, press, add_readings):
        add_readings(SensorFactory(machine=press), days_ago(20, 5))

        assert admin_client.get(PREVIEW_URL).json()["would_delete"]["readings"] == 0
        downgrade = admin_client.get(PREVIEW_URL, {"tier": "free"}).json()

        assert downgrade["tier"] == "free"
        assert downgrade["would_delete"]["readings"] == 1
        assert tenant.tier == "professional"

    def test_unknown_tier_is_400(self, admin_client):
        response = admin_client.get(PREVIEW_URL, {"tier": "platinum"})

        assert response.status_code == 400
        assert "tier" in response.json()

    def test_only_admins(self, viewer_client):
        assert viewer_client.get(PREVIEW_URL).status_code == 403


class TestRollupsComeFirst:
    def test_a_run_whose_rollups_fail_deletes_no_reading(self, tenant, sensor, add_readings, monkeypatch):
        add_readings(sensor, days_ago(120))

        def broken(**kwargs):
            raise RuntimeError("rollups unavailable")

        monkeypatch.setattr("retention.services.rollups.rollups_build", broken)
        run = run_now(tenant)

        assert run.status == RetentionRun.Status.FAILED
        assert SensorReading.objects.filter(tenant=tenant).count() == 1

    def test_rows_deleted_are_in_the_rollups_first(self, tenant, sensor, add_readings):
        add_readings(sensor, days_ago(120))

        run_now(tenant)

        assert SensorReading.objects.filter(tenant=tenant).count() == 0
        assert sorted(SensorRollup.objects.values_list("bucket", "count")) == [(3600, 1), (86400, 1)]

    def test_mixed_tiers_a_free_run_never_touches_another_tenant(self, tenant, add_readings):
        enterprise = TenantFactory(tier="enterprise")
        theirs = SensorFactory(machine=MachineFactory(tenant=enterprise))
        add_readings(theirs, days_ago(300, 30))
        free = TenantFactory(tier="free")
        mine = SensorFactory(machine=MachineFactory(tenant=free))
        add_readings(mine, days_ago(300, 30))

        run_now(free)

        assert SensorReading.objects.filter(tenant=free).count() == 0
        assert SensorReading.objects.filter(tenant=enterprise).count() == 2
