import pytest

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
