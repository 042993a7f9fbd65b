"""GET /api/v1/settings/audit-log: admins read their own tenant's log, newest first."""

import uuid

import pytest

from audit.models import AuditEvent
from audit.tests.factories import AuditEventFactory
from core.permissions import ADMIN_REQUIRED, USER_LOGIN_REQUIRED
from haltless.testing import AUDIT_LOG_URL, client_for_key

pytestmark = pytest.mark.django_db


class TestAccess:
    def test_admin_reads_the_log(self, admin_client, tenant):
        event = AuditEventFactory(tenant=tenant, action="api_key.create", changes={"name": "edge"})
        response = admin_client.get(AUDIT_LOG_URL)
        assert response.status_code == 200
        body = response.json()
        assert body["count"] == 1
        assert body["results"] == [
            {
                "id": str(event.id),
                "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
                "action": "api_key.create",
                "actor_type": "user",
                "actor_id": str(event.actor_id),
                "actor_label": event.actor_label,
                "target_type": "user",
                "target_id": event.target_id,
                "target_label": event.target_label,
                "changes": {"name": "edge"},
                "client_ip": "192.0.2.10",
            }
        ]

    def test_trailing_slash_is_served(self, admin_client):
        assert admin_client.get(AUDIT_LOG_URL + "/").status_code == 200

    @pytest.mark.parametrize("client_fixture", ["operator_client", "viewer_client"])
    def test_other_roles_are_refused(self, request, client_fixture):
        response = request.getfixturevalue(client_fixture).get(AUDIT_LOG_URL)
        assert response.status_code == 403
        assert response.json() == {"detail": ADMIN_REQUIRED}

    def test_anonymous_is_401(self, api_client):
        response = api_client.get(AUDIT_LOG_URL)
        assert response.status_code == 401
        assert response.json() == {"detail": "Authentication credentials were not provided."}

    @pytest.mark.parametrize("scopes", ["edge_agent", "read_only"])
    def test_api_keys_are_refused(self, make_api_key, scopes):
        issued = make_api_key(scopes=scopes)
        response = client_for_key(issued.secret).get(AUDIT_LOG_URL)
        assert response.status_code == 403
        assert response.json() == {"detail": USER_LOGIN_REQUIRED}

    @pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
    def test_the_log_cannot_be_written(self, admin_client, tenant, method):
        AuditEventFactory(tenant=tenant)
        response = getattr(admin_client, method)(AUDIT_LOG_URL, {})
        assert response.status_code == 405
        assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}
        assert AuditEvent.objects.count() == 1


class TestTenantIsolation:
    def test_only_the_callers_tenant_is_listed(self, admin_client, other_tenant_admin_client, tenant, other_tenant):
        ours = AuditEventFactory(tenant=tenant)
        theirs = AuditEventFactory(tenant=other_tenant)
        assert [e["id"] for e in admin_client.get(AUDIT_LOG_URL).json()["results"]] == [str(ours.id)]
        other = other_tenant_admin_client.get(AUDIT_LOG_URL).json()
        assert (other["count"], [e["id"] for e in other["results"]]) == (1, [str(theirs.id)])

    def test_filtering_by_another_tenants_actor_finds_nothing(self, admin_client, tenant, other_tenant):
        theirs = AuditEventFactory(tenant=other_tenant)
        response = admin_client.get(AUDIT_LOG_URL, {"actor": str(theirs.actor_id)})
        assert response.status_code == 200
        assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


class TestOrderingAndPagination:
    def test_newest_first(self, admin_client, tenant, event_at, base_time, hour):
        middle = event_at(base_time, tenant=tenant)
        newest = event_at(base_time + hour, tenant=tenant)
        oldest = event_at(base_time - hour, tenant=tenant)
        results = admin_client.get(AUDIT_LOG_URL).json()["results"]
        assert [e["id"] for e in results] == [str(newest.id), str(middle.id), str(oldest.id)]

    def test_pages_cover_every_event_once_even_with_equal_times(self, admin_client, tenant, event_at, base_time):
        created = {str(event_at(base_time, tenant=tenant).id) for _ in range(5)}
        first = admin_client.get(AUDIT_LOG_URL, {"page_size": 2}).json()
        assert first["count"] == 5
        assert first["previous"] is None
        seen, url = [], AUDIT_LOG_URL + "?page_size=2"
        while url:
            page = admin_client.get(url).json()
            seen += [e["id"] for e in page["results"]]
            url = page["next"]
        assert len(seen) == 5
        assert set(seen) == created

    def test_page_beyond_the_end_is_404(self, admin_client, tenant):
        AuditEventFactory(tenant=tenant)
        response = admin_client.get(AUDIT_LOG_URL, {"page": 9})
        assert response.status_code == 404
        assert response.json() == {"detail": "Invalid page."}


class TestFilters:
    @pytest.fixture
    def events(self, tenant, event_at, base_time, hour):
        actor = uuid.uuid4()
        return {
            "created": event_at(base_time - hour, tenant=tenant, action="user.create", actor_id=actor),
            "revoked": event_at(base_time, tenant=tenant, action="api_key.revoke"),
            "by_key": event_at(
                base_time + hour, tenant=tenant, action="telemetry.ingest", actor_type="api_key", actor_id=actor
            ),
            "by_system": event_at(
                base_time + 2 * hour, tenant=tenant, action="retention.run", actor_type="system", actor_id=None
            ),
        }

    @staticmethod
    def ids(response) -> list[str]:
        assert response.status_code == 200, response.json()
        return [e["id"] for e in response.json()["results"]]

    def test_by_action(self, admin_client, events):
        response = admin_client.get(AUDIT_LOG_URL, {"action": "api_key.revoke"})
        assert self.ids(response) == [str(events["revoked"].id)]

    def test_by_actor(self, admin_client, events):
        response = admin_client.get(AUDIT_LOG_URL, {"actor": str(events["created"].actor_id)})
        assert self.ids(response) == [str(events["by_key"].id), str(events["created"].id)]

    def test_by_actor_type(self, admin_client, events):
        response = admin_client.get(AUDIT_LOG_URL, {"actor_type": "system"})
        assert self.ids(response) == [str(events["by_system"].id)]

    def test_by_target(self, admin_client, events):
        target = events["revoked"]
        response = admin_client.get(AUDIT_LOG_URL, {"target_type": "user", "target_id": target.target_id})
        assert self.ids(response) == [str(target.id)]

    def test_from_is_inclusive_and_to_exclusive(self, admin_client, events, base_time, hour):
        params = {"from": base_time.isoformat(), "to": (base_time + 2 * hour).isoformat()}
        response = admin_client.get(AUDIT_LOG_URL, params)
        assert self.ids(response) == [str(events["by_key"].id), str(events["revoked"].id)]

    def test_from_accepts_z_suffix(self, admin_client, events):
        response = admin_client.get(AUDIT_LOG_URL, {"from": "2026-03-01T14:00:00Z"})
        assert self.ids(response) == [str(events["by_system"].id)]

    def test_offsets_postgresql_cannot_hold_are_converted_to_utc(self, admin_client, events):
        # Python accepts offsets up to ±23:59, PostgreSQL only ±15:59.
        response = admin_client.get(AUDIT_LOG_URL, {"from": "2026-03-02T11:30:00+23:00"})  # 12:30 UTC on the 1st
        assert self.ids(response) == [str(events["by_system"].id), str(events["by_key"].id)]

    @pytest.mark.parametrize(
        ("param", "value"),
        [
            ("actor", "not-a-uuid"),
            ("actor_type", "robot"),
            ("from", "yesterday"),
            ("to", "2026-13-45"),
            ("from", "0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
            ("to", "9999-12-31T23:00:00-02:00"),  # after 9999 in UTC
        ],
    )
    def test_malformed_filter_is_400_naming_it(self, admin_client, events, param, value):
        response = admin_client.get(AUDIT_LOG_URL, {param: value})
        assert response.status_code == 400
        body = response.json()
        assert list(body) == [param]
        assert isinstance(body[param], list) and body[param]


def test_a_time_outside_the_years_postgresql_holds_says_so(admin_client, db):
    response = admin_client.get(AUDIT_LOG_URL, {"to": "9999-12-31T23:00:00-02:00"})
    assert response.json() == {"to": ["Enter a date and time between years 1 and 9999 (UTC)."]}
