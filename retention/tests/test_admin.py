import pytest
from django.utils import timezone

from retention.models import RetentionRun
from retention.tests.factories import RetentionRunFactory

CHANGELIST = "/admin/retention/retentionrun/"

pytestmark = pytest.mark.django_db


class TestRetentionRunAdmin:
    def test_lists_runs_filtered_by_tenant_and_status(self, staff_client, tenant, other_tenant):
        mine = RetentionRunFactory(tenant=tenant, status=RetentionRun.Status.FAILED)
        RetentionRunFactory(tenant=other_tenant, status=RetentionRun.Status.FAILED)
        RetentionRunFactory(tenant=tenant, status=RetentionRun.Status.SUCCEEDED)

        response = staff_client.get(CHANGELIST, {"tenant__id__exact": str(tenant.pk), "status__exact": "failed"})

        assert response.status_code == 200
        assert [run.pk for run in response.context["cl"].result_list] == [mine.pk]

    def test_runs_are_read_only(self, staff_client, tenant):
        run = RetentionRunFactory(tenant=tenant)

        detail = staff_client.get(f"{CHANGELIST}{run.pk}/change/")
        edit = staff_client.post(f"{CHANGELIST}{run.pk}/change/", {"status": "queued"})

        assert detail.status_code == 200
        assert not detail.context["has_change_permission"]
        assert edit.status_code == 403
        assert staff_client.get(f"{CHANGELIST}add/").status_code == 403
        assert staff_client.post(f"{CHANGELIST}{run.pk}/delete/", {"post": "yes"}).status_code == 403
        run.refresh_from_db()
        assert run.status == RetentionRun.Status.SUCCEEDED


@pytest.fixture
def console(admin_user):
    from django.test import Client

    client = Client()
    client.force_login(admin_user)
    return client


POLICIES = "/admin/retention/retentionpolicy/"
HOLDS = "/admin/retention/retentionhold/"


class TestRetentionPolicyAdmin:
    """A tenant admin changes the windows in the console, through retention_policy_update."""

    def test_a_tenant_admin_sets_the_windows_through_the_service(self, console, tenant):
        from audit.models import AuditEvent
        from retention.models import RetentionPolicy

        response = console.post(f"{POLICIES}add/", {"readings_days": "30", "heartbeats_days": "", "rollups_days": ""})

        assert response.status_code == 302, response.context["adminform"].form.errors
        policy = RetentionPolicy.objects.get()
        assert (policy.tenant_id, policy.readings_days, policy.heartbeats_days) == (tenant.pk, 30, None)
        event = AuditEvent.objects.get(action="retention_policy.update")
        assert event.changes["after"] == {"readings_days": 30, "heartbeats_days": None, "rollups_days": None}
        assert event.tenant_id == tenant.pk
        # It exists now: adding again sets the same one, as the PUT does.
        again = console.post(f"{POLICIES}add/", {"readings_days": "20", "heartbeats_days": "", "rollups_days": ""})
        assert again.status_code == 302
        assert list(RetentionPolicy.objects.values_list("readings_days", flat=True)) == [20]
        change = console.post(
            f"{POLICIES}{tenant.pk}/change/", {"readings_days": "", "heartbeats_days": "7", "rollups_days": ""}
        )
        assert change.status_code == 302
        policy.refresh_from_db()
        assert (policy.readings_days, policy.heartbeats_days) == (None, 7)

    def test_a_window_above_the_tier_is_refused_on_the_form_with_the_apis_message(self, console, tenant):
        from retention.models import RetentionPolicy

        # The tenant's tier is professional: 90 days of raw readings at most.
        response = console.post(f"{POLICIES}add/", {"readings_days": "400", "heartbeats_days": "", "rollups_days": ""})

        assert response.status_code == 200
        assert response.context["adminform"].form.errors == {
            "readings_days": ["At most 90 days: the professional tier's limit for readings."]
        }
        assert not RetentionPolicy.objects.exists()

    def test_a_policy_is_never_deleted_in_the_admin(self, console, tenant):
        from retention.models import RetentionPolicy

        RetentionPolicy.objects.create(tenant=tenant, readings_days=3)
        assert console.post(f"{POLICIES}{tenant.pk}/delete/", {"post": "yes"}).status_code == 403
        assert RetentionPolicy.objects.filter(tenant=tenant).exists()


class TestRetentionHoldAdmin:
    """A tenant admin places and releases legal holds in the console, through the hold services."""

    def test_a_tenant_admin_places_a_hold_on_some_machines(self, console, tenant, other_tenant):
        from audit.models import AuditEvent
        from retention.models import RetentionHold
        from telemetry.tests.factories import MachineFactory

        press = MachineFactory(tenant=tenant, external_id="press-1")
        MachineFactory(tenant=tenant, external_id="press-2")
        theirs = MachineFactory(tenant=other_tenant, external_id="press-1")
        form = console.get(f"{HOLDS}add/").context["adminform"].form
        assert theirs.pk not in {machine.pk for machine in form.fields["machines"].queryset}

        response = console.post(
            f"{HOLDS}add/",
            {
                "reason": "Case 2026-17",
                "machines": [str(press.pk)],
                "starts_at_0": "2026-01-01",
                "starts_at_1": "00:00",
            },
        )

        assert response.status_code == 302, response.context["adminform"].form.errors
        hold = RetentionHold.objects.get()
        assert (hold.tenant_id, hold.reason, hold.all_machines) == (tenant.pk, "Case 2026-17", False)
        assert [machine.external_id for machine in hold.machines.all()] == ["press-1"]
        event = AuditEvent.objects.get(action="retention_hold.create")
        assert event.changes["machines"] == ["press-1"]

    def test_no_machine_chosen_holds_every_machine(self, console, tenant):
        from retention.models import RetentionHold

        response = console.post(
            f"{HOLDS}add/", {"reason": "Audit", "starts_at_0": "2026-01-01", "starts_at_1": "00:00"}
        )

        assert response.status_code == 302
        assert RetentionHold.objects.get().all_machines

    def test_the_services_rules_are_shown_on_the_form(self, console, tenant):
        from retention.models import RetentionHold

        response = console.post(
            f"{HOLDS}add/",
            {
                "reason": "   ",
                "starts_at_0": "2026-02-01",
                "starts_at_1": "00:00",
                "ends_at_0": "2026-01-01",
                "ends_at_1": "00:00",
            },
        )

        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert errors["reason"] == ["This field is required."]
        assert errors["ends_at"] == ["Must be after `from`."]
        for n in range(20):
            RetentionHold.objects.create(tenant=tenant, reason=f"case {n}", starts_at=timezone.now())
        full = console.post(f"{HOLDS}add/", {"reason": "one more", "starts_at_0": "2026-01-01", "starts_at_1": "00:00"})
        assert full.context["adminform"].form.non_field_errors() == [
            "At most 20 active holds per tenant; release one first."
        ]
        assert RetentionHold.objects.count() == 20

    def test_release_is_an_action_and_a_hold_is_never_deleted_or_edited(self, console, tenant):
        from audit.models import AuditEvent
        from retention.models import RetentionHold

        hold = RetentionHold.objects.create(tenant=tenant, reason="case", starts_at=timezone.now())
        assert console.post(f"{HOLDS}{hold.pk}/delete/", {"post": "yes"}).status_code == 403
        assert console.post(f"{HOLDS}{hold.pk}/change/", {"reason": "edited"}).status_code == 403

        response = console.post(HOLDS, {"action": "release_holds", "_selected_action": [str(hold.pk)]})

        assert response.status_code == 302
        hold.refresh_from_db()
        assert hold.released_at is not None and hold.reason == "case"
        assert AuditEvent.objects.get(action="retention_hold.release").tenant_id == tenant.pk
