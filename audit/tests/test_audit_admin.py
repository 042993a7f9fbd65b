"""The Django admin shows the log and lets nobody change it."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from audit.tests.factories import AuditEventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(tenant):
    return AuditEventFactory(tenant=tenant, action="api_key.revoke", target_label="edge-agent (hlts_abc1234…)")


class TestReadOnlyAdmin:
    def test_changelist_lists_events(self, staff_client, event):
        response = staff_client.get(reverse("admin:audit_auditevent_changelist"))
        assert response.status_code == 200
        assert b"api_key.revoke" in response.content

    @pytest.mark.parametrize(
        "params",
        [
            {"q": "edge-agent"},
            {"q": "not-a-uuid"},
            {"action": "api_key.revoke"},
            {"actor_type__exact": "user"},
        ],
    )
    def test_search_and_filters_work(self, staff_client, event, params):
        response = staff_client.get(reverse("admin:audit_auditevent_changelist"), params)
        assert response.status_code == 200

    def test_search_by_actor_id(self, staff_client, event, tenant):
        AuditEventFactory(tenant=tenant, action="user.create")
        response = staff_client.get(reverse("admin:audit_auditevent_changelist"), {"q": str(event.actor_id)})
        assert response.status_code == 200
        assert response.context["cl"].result_count == 1

    def test_tenant_filter(self, staff_client, event, other_tenant):
        AuditEventFactory(tenant=other_tenant)
        response = staff_client.get(
            reverse("admin:audit_auditevent_changelist"), {"tenant__id__exact": event.tenant_id}
        )
        assert response.status_code == 200
        assert response.context["cl"].result_count == 1

    def test_detail_is_view_only(self, staff_client, event):
        url = reverse("admin:audit_auditevent_change", args=[event.pk])
        response = staff_client.get(url)
        assert response.status_code == 200
        assert response.context["has_change_permission"] is False
        response = staff_client.post(url, {"action": "tampered"})
        assert response.status_code == 403
        event.refresh_from_db()
        assert event.action == "api_key.revoke"

    def test_no_add(self, staff_client):
        assert staff_client.get(reverse("admin:audit_auditevent_add")).status_code == 403

    def test_no_delete(self, staff_client, event):
        response = staff_client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"})
        assert response.status_code == 403
        assert AuditEvent.objects.filter(pk=event.pk).exists()

    def test_no_bulk_delete_action(self, staff_client, event):
        response = staff_client.get(reverse("admin:audit_auditevent_changelist"))
        # Without delete permission Django offers no bulk action at all.
        assert response.context["action_form"] is None
