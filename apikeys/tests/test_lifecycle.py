"""Part 2, "API keys: one key, its whole life", over HTTP: items, filters, PATCH, disable,
rotation with overlap, who-am-I and bulk revoke (issue 16)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.tests.factories import ApiKeyFactory
from audit.models import AuditEvent
from haltless.testing import client_for_key

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/settings/api-keys"
WHOAMI = "/api/v1/agent/whoami"
BULK = f"{KEYS}/revoke"


def detail(key_id) -> str:
    return f"{KEYS}/{key_id}"


def rotate_url(key_id) -> str:
    return f"{KEYS}/{key_id}/rotate"


def used(issued):
    """The key as it is once an agent has used its current secret."""
    client_for_key(issued.secret).get(WHOAMI)
    issued.api_key.refresh_from_db()
    return issued


def rotate(admin_client, key_id, **body):
    return admin_client.post(rotate_url(key_id), body, format="json")


class TestItems:
    def test_detail_has_the_list_fields(self, admin_client, api_key):
        listed = admin_client.get(KEYS).json()[0]
        shown = admin_client.get(detail(api_key.api_key.id)).json()
        assert shown == listed
        assert shown["status"] == "active"
        assert shown["disabled"] is False
        assert shown["exposed_at"] is None
        assert shown["rotation"] is None
        assert shown["policy_violations"] == []

    def test_any_role_reads_a_key(self, viewer_client, api_key):
        assert viewer_client.get(detail(api_key.api_key.id)).status_code == 200

    def test_other_tenants_and_revoked_keys_are_not_found(self, admin_client, other_tenant_key, revoked_key):
        assert admin_client.get(detail(other_tenant_key.api_key.id)).status_code == 404
        assert admin_client.get(detail(revoked_key.id)).status_code == 404

    def test_expired_wins_over_disabled(self, admin_client, tenant):
        key = ApiKeyFactory(tenant=tenant, disabled=True, expires_at=timezone.now() - timedelta(minutes=1))
        assert admin_client.get(detail(key.id)).json()["status"] == "expired"
        ApiKey.objects.filter(pk=key.pk).update(expires_at=None)
        assert admin_client.get(detail(key.id)).json()["status"] == "disabled"


class TestFilters:
    @pytest.fixture
    def keys(self, tenant):
        now = timezone.now()
        return {
            "active": ApiKeyFactory(tenant=tenant, name="active", last_used_at=now),
            "disabled": ApiKeyFactory(tenant=tenant, name="disabled", disabled=True, last_used_at=now),
            "expired": ApiKeyFactory(tenant=tenant, name="expired", disabled=True, expires_at=now - timedelta(days=1)),
            "soon": ApiKeyFactory(tenant=tenant, name="soon", expires_at=now + timedelta(days=3), last_used_at=now),
            "exposed": ApiKeyFactory(tenant=tenant, name="exposed", exposed_at=now, last_used_at=now),
            "stale": ApiKeyFactory(tenant=tenant, name="stale", last_used_at=now - timedelta(days=40)),
        }

    def names(self, client, query) -> set[str]:
        response = client.get(KEYS, query)
        assert response.status_code == 200, response.content
        return {item["name"] for item in response.json()}

    def test_status(self, admin_client, keys):
        assert self.names(admin_client, {"status": "disabled"}) == {"disabled"}
        assert self.names(admin_client, {"status": "expired"}) == {"expired"}
        assert self.names(admin_client, {"status": "active"}) == {"active", "soon", "exposed", "stale"}

    def test_exposed(self, admin_client, keys):
        assert self.names(admin_client, {"exposed": "true"}) == {"exposed"}

    def test_expiring_within_days(self, admin_client, keys):
        assert self.names(admin_client, {"expiring_within_days": 7}) == {"soon"}
        assert self.names(admin_client, {"expiring_within_days": 1}) == set()

    def test_unused_for_days_counts_creation_when_never_used(self, admin_client, keys, tenant):
        never = ApiKeyFactory(tenant=tenant, name="never")
        ApiKey.objects.filter(pk=never.pk).update(created_at=timezone.now() - timedelta(days=31))
        assert self.names(admin_client, {"unused_for_days": 30}) == {"stale", "never"}

    @pytest.mark.parametrize(
        "query", [{"status": "revoked"}, {"expiring_within_days": "soon"}, {"unused_for_days": -1}, {"exposed": "x"}]
    )
    def test_bad_values_are_400(self, admin_client, keys, query):
        assert admin_client.get(KEYS, query).status_code == 400


class TestPatch:
    def test_changes_fields_and_returns_the_item(self, admin_client, api_key, admin_user):
        expiry = timezone.now() + timedelta(days=30)
        response = admin_client.patch(
            detail(api_key.api_key.id),
            {"name": "gateway 7", "scopes": "read_only", "expires_at": expiry.isoformat()},
            format="json",
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["name"] == "gateway 7"
        assert body["scopes"] == ["read:machines", "read:sensors"]
        assert body["id"] == str(api_key.api_key.id)
        event = AuditEvent.objects.get(action="api_key.update")
        assert event.actor_id == admin_user.id
        assert set(event.changes) == {"name", "scopes", "expires_at"}

    def test_disabled_key_is_refused_until_enabled(self, admin_client, api_key):
        key_client = client_for_key(api_key.secret)
        assert key_client.get(WHOAMI).status_code == 200
        assert admin_client.patch(detail(api_key.api_key.id), {"disabled": True}, format="json").json()["status"] == (
            "disabled"
        )
        response = key_client.get(WHOAMI)
        assert response.status_code == 401
        assert response.json() == {"detail": "API key is disabled."}
        admin_client.patch(detail(api_key.api_key.id), {"disabled": False}, format="json")
        assert key_client.get(WHOAMI).status_code == 200
        changes = [e.changes for e in AuditEvent.objects.filter(action="api_key.update").order_by("occurred_at")]
        assert changes == [{"disabled": [False, True]}, {"disabled": [True, False]}]

    def test_expired_and_disabled_says_expired(self, tenant):
        key = ApiKeyFactory(tenant=tenant, disabled=True, expires_at=timezone.now() - timedelta(minutes=1))
        assert client_for_key(key.secret).get(WHOAMI).json() == {"detail": "API key has expired."}

    @pytest.mark.parametrize(
        "body",
        [
            {"name": ""},
            {"scopes": ["nope"]},
            {"scopes": []},
            {"expires_at": "2001-01-01T00:00:00Z"},
            {"disabled": "maybe"},
            {"prefix": "hlts_1234567"},
            {"secret": "x"},
        ],
    )
    def test_bad_input_is_400_and_changes_nothing(self, admin_client, api_key, body):
        before = ApiKey.objects.filter(pk=api_key.api_key.pk).values().get()
        response = admin_client.patch(detail(api_key.api_key.id), body, format="json")
        assert response.status_code == 400, response.content
        assert ApiKey.objects.filter(pk=api_key.api_key.pk).values().get() == before
        assert not AuditEvent.objects.filter(action="api_key.update").exists()

    def test_revoked_and_other_tenants_keys_are_404(self, admin_client, revoked_key, other_tenant_key):
        assert admin_client.patch(detail(revoked_key.id), {"name": "x"}, format="json").status_code == 404
        assert admin_client.patch(detail(other_tenant_key.api_key.id), {"name": "x"}, format="json").status_code == 404

    def test_only_admins_patch(self, operator_client, api_key):
        assert operator_client.patch(detail(api_key.api_key.id), {"name": "x"}, format="json").status_code == 403


class TestRotation:
    def test_new_secret_once_and_both_work_within_the_overlap(self, admin_client, api_key, admin_user):
        used(api_key)
        response = rotate(admin_client, api_key.api_key.id, overlap_seconds=600)
        assert response.status_code == 201, response.content
        assert response["Cache-Control"] == "no-store"
        body = response.json()
        new_secret = body["key"]
        assert body["id"] == str(api_key.api_key.id)
        assert body["name"] == api_key.api_key.name and body["scopes"] == api_key.api_key.scopes
        assert body["prefix"] == new_secret[:12]
        assert body["rotation"]["previous_prefix"] == api_key.secret[:12]
        assert client_for_key(new_secret).get(WHOAMI).json()["secret"] == "current"
        assert client_for_key(api_key.secret).get(WHOAMI).json()["secret"] == "previous"
        # Shown once: neither the list nor the detail carries it.
        assert new_secret not in admin_client.get(KEYS).content.decode()
        event = AuditEvent.objects.get(action="api_key.rotate")
        assert event.actor_id == admin_user.id
        assert new_secret not in str(event.changes)

    def test_old_secret_after_the_overlap_is_told_to_use_the_new_key(self, admin_client, api_key):
        used(api_key)
        rotate(admin_client, api_key.api_key.id, overlap_seconds=0)
        response = client_for_key(api_key.secret).get(WHOAMI)
        assert response.status_code == 401
        assert response.json() == {"detail": "API key has been rotated; use the new key."}
        assert admin_client.get(detail(api_key.api_key.id)).json()["rotation"] is None

    def test_previous_secret_past_its_deadline(self, admin_client, api_key):
        used(api_key)
        rotate(admin_client, api_key.api_key.id, overlap_seconds=3600)
        ApiKey.objects.filter(pk=api_key.api_key.pk).update(previous_valid_until=timezone.now() - timedelta(seconds=1))
        assert client_for_key(api_key.secret).get(WHOAMI).json() == {
            "detail": "API key has been rotated; use the new key."
        }

    def test_revoked_beats_rotated(self, admin_client, api_key):
        used(api_key)
        rotate(admin_client, api_key.api_key.id, overlap_seconds=0)
        admin_client.delete(detail(api_key.api_key.id))
        assert client_for_key(api_key.secret).get(WHOAMI).json() == {"detail": "API key has been revoked."}

    def test_expires_at_is_kept_unless_given(self, admin_client, make_api_key):
        expiry = timezone.now() + timedelta(days=10)
        issued = used(make_api_key(expires_at=expiry))
        assert rotate(admin_client, issued.api_key.id).json()["expires_at"] == expiry.isoformat().replace("+00:00", "Z")
        later = timezone.now() + timedelta(days=20)
        body = rotate(admin_client, issued.api_key.id, expires_at=later.isoformat()).json()
        assert body["expires_at"] == later.isoformat().replace("+00:00", "Z")

    def test_default_overlap_is_an_hour(self, admin_client, api_key):
        used(api_key)
        before = timezone.now()
        rotate(admin_client, api_key.api_key.id)
        api_key.api_key.refresh_from_db()
        overlap = api_key.api_key.previous_valid_until - before
        assert timedelta(minutes=59) < overlap <= timedelta(hours=1, seconds=5)

    def test_lost_answer_replaces_the_unused_secret_and_keeps_the_previous_deadline(self, admin_client, api_key):
        used(api_key)
        lost = rotate(admin_client, api_key.api_key.id, overlap_seconds=3600).json()
        api_key.api_key.refresh_from_db()
        deadline = api_key.api_key.previous_valid_until
        retried = rotate(admin_client, api_key.api_key.id, overlap_seconds=60).json()
        api_key.api_key.refresh_from_db()
        assert api_key.api_key.previous_valid_until == deadline
        assert retried["rotation"]["previous_prefix"] == api_key.secret[:12]
        assert client_for_key(lost["key"]).get(WHOAMI).json() == {"detail": "Invalid API key."}
        assert client_for_key(api_key.secret).get(WHOAMI).json()["secret"] == "previous"
        assert client_for_key(retried["key"]).get(WHOAMI).json()["secret"] == "current"

    def test_rotating_after_the_new_secret_was_used_ends_the_oldest_at_once(self, admin_client, api_key):
        used(api_key)
        second = rotate(admin_client, api_key.api_key.id, overlap_seconds=3600).json()["key"]
        client_for_key(second).get(WHOAMI)
        third = rotate(admin_client, api_key.api_key.id, overlap_seconds=3600).json()["key"]
        assert client_for_key(api_key.secret).get(WHOAMI).json() == {"detail": "Invalid API key."}
        assert client_for_key(second).get(WHOAMI).json()["secret"] == "previous"
        assert client_for_key(third).get(WHOAMI).json()["secret"] == "current"

    @pytest.mark.parametrize("overlap", [-1, 604801, "an hour", None, 1.5, True])
    def test_overlap_outside_the_range_is_400_and_changes_nothing(self, admin_client, api_key, overlap):
        before = ApiKey.objects.filter(pk=api_key.api_key.pk).values().get()
        response = rotate(admin_client, api_key.api_key.id, overlap_seconds=overlap)
        assert response.status_code == 400
        assert "overlap_seconds" in response.json()
        assert ApiKey.objects.filter(pk=api_key.api_key.pk).values().get() == before
        assert not AuditEvent.objects.filter(action="api_key.rotate").exists()

    def test_the_range_ends_are_accepted(self, admin_client, make_api_key):
        assert rotate(admin_client, make_api_key().api_key.id, overlap_seconds=0).status_code == 201
        assert rotate(admin_client, make_api_key().api_key.id, overlap_seconds=604800).status_code == 201

    def test_unknown_field_and_past_expiry_are_400(self, admin_client, api_key):
        assert rotate(admin_client, api_key.api_key.id, overlap=5).status_code == 400
        assert rotate(admin_client, api_key.api_key.id, expires_at="2001-01-01T00:00:00Z").status_code == 400

    def test_expired_or_disabled_is_409(self, admin_client, tenant):
        expired = ApiKeyFactory(tenant=tenant, expires_at=timezone.now() - timedelta(minutes=1))
        disabled = ApiKeyFactory(tenant=tenant, disabled=True)
        for key in (expired, disabled):
            response = rotate(admin_client, key.id)
            assert response.status_code == 409
            assert isinstance(response.json()["detail"], str)
        assert not AuditEvent.objects.filter(action="api_key.rotate").exists()

    def test_revoked_or_other_tenants_is_404(self, admin_client, revoked_key, other_tenant_key):
        assert rotate(admin_client, revoked_key.id).status_code == 404
        assert rotate(admin_client, other_tenant_key.api_key.id).status_code == 404

    def test_only_admins_rotate(self, operator_client, api_key):
        assert rotate(operator_client, api_key.api_key.id).status_code == 403


class TestAuthenticationCost:
    """Either secret of a rotated key costs one indexed query."""

    @pytest.mark.parametrize("which", ["current", "previous"])
    def test_one_query_with_either_secret(self, admin_client, api_key, which):
        used(api_key)
        new_secret = rotate(admin_client, api_key.api_key.id).json()["key"]
        client_for_key(new_secret).get(WHOAMI)  # first uses are written once
        client_for_key(api_key.secret).get(WHOAMI)
        secret = new_secret if which == "current" else api_key.secret
        with CaptureQueriesContext(connection) as queries:
            response = client_for_key(secret).get(WHOAMI)
        assert response.json()["secret"] == which
        assert len(queries) == 1, [q["sql"] for q in queries]
        assert "previous_prefix" in queries[0]["sql"]


class TestWhoAmI:
    def test_describes_the_key_whatever_its_scopes(self, read_only_key):
        body = client_for_key(read_only_key.secret).get(WHOAMI).json()
        key = read_only_key.api_key
        assert body["key_id"] == str(key.id)
        assert body["name"] == key.name and body["prefix"] == key.prefix
        assert body["tenant_id"] == str(key.tenant_id)
        assert body["scopes"] == ["read:machines", "read:sensors"]
        assert body["expires_at"] is None and body["rotation"] is None
        assert body["secret"] == "current"
        assert body["server_time"].endswith("Z")

    def test_previous_secret_shows_the_rotation(self, admin_client, api_key):
        used(api_key)
        rotate(admin_client, api_key.api_key.id)
        body = client_for_key(api_key.secret).get(WHOAMI).json()
        assert body["secret"] == "previous"
        assert body["rotation"]["previous_prefix"] == api_key.secret[:12]

    def test_a_jwt_is_403(self, admin_client):
        response = admin_client.get(WHOAMI)
        assert response.status_code == 403
        assert response.json() == {"detail": "This endpoint is for API keys only; a user login is not accepted here."}

    def test_a_bad_key_is_401(self, api_client):
        response = api_client.get(WHOAMI, HTTP_X_API_KEY="hlts_nonsense")
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid API key."}


class TestBulkRevoke:
    @pytest.fixture
    def fleet(self, tenant):
        now = timezone.now()
        old_unused = ApiKeyFactory(tenant=tenant, name="old unused")
        old_used = ApiKeyFactory(tenant=tenant, name="old used", last_used_at=now)
        new_unused = ApiKeyFactory(tenant=tenant, name="new unused")
        ApiKey.objects.filter(pk__in=[old_unused.pk, old_used.pk]).update(created_at=now - timedelta(days=100))
        return {"old_unused": old_unused, "old_used": old_used, "new_unused": new_unused}

    def live_names(self, tenant) -> set[str]:
        return set(ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True).values_list("name", flat=True))

    def test_by_ids_ignores_unknown_and_other_tenants(self, admin_client, fleet, other_tenant_key, tenant):
        ids = [str(fleet["old_used"].id), str(other_tenant_key.api_key.id), "00000000-0000-4000-8000-000000000000"]
        response = admin_client.post(BULK, {"ids": ids}, format="json")
        assert response.status_code == 200
        assert response.json() == {"revoked": 1}
        assert self.live_names(tenant) == {"old unused", "new unused"}
        assert ApiKey.objects.get(pk=other_tenant_key.api_key.pk).revoked_at is None

    def test_every_given_criterion_must_match(self, admin_client, fleet, tenant):
        cutoff = (timezone.now() - timedelta(days=30)).isoformat()
        response = admin_client.post(BULK, {"created_before": cutoff, "unused_since": cutoff}, format="json")
        assert response.json() == {"revoked": 1}
        assert self.live_names(tenant) == {"old used", "new unused"}

    def test_created_before(self, admin_client, fleet, tenant):
        cutoff = (timezone.now() - timedelta(days=30)).isoformat()
        assert admin_client.post(BULK, {"created_before": cutoff}, format="json").json() == {"revoked": 2}
        assert self.live_names(tenant) == {"new unused"}

    def test_dry_run_changes_nothing(self, admin_client, fleet, tenant):
        cutoff = (timezone.now() - timedelta(days=30)).isoformat()
        body = admin_client.post(BULK, {"created_before": cutoff, "dry_run": True}, format="json").json()
        assert body["revoked"] == 0 and body["would_revoke"] == 2
        assert set(body["ids"]) == {str(fleet["old_unused"].id), str(fleet["old_used"].id)}
        assert len(self.live_names(tenant)) == 3
        assert not AuditEvent.objects.filter(action__startswith="api_key.").exclude(action="api_key.create").exists()

    def test_audits_the_bulk_action_and_each_key(self, admin_client, fleet, admin_user):
        cutoff = (timezone.now() - timedelta(days=30)).isoformat()
        admin_client.post(BULK, {"created_before": cutoff}, format="json")
        assert AuditEvent.objects.filter(action="api_key.revoke", actor_id=admin_user.id).count() == 2
        bulk = AuditEvent.objects.get(action="api_key.bulk_revoke")
        assert sorted(bulk.changes["revoked"]) == sorted([str(fleet["old_unused"].id), str(fleet["old_used"].id)])

    def test_revoked_keys_stop_working(self, admin_client, api_key):
        admin_client.post(BULK, {"ids": [str(api_key.api_key.id)]}, format="json")
        assert client_for_key(api_key.secret).get(WHOAMI).json() == {"detail": "API key has been revoked."}

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"dry_run": True},
            {"ids": []},
            {"ids": ["not-a-uuid"]},
            {"ids": "everything"},
            {"created_before": "yesterday"},
            {"unused_since": None},
            {"ids": [], "created_before": "2030-01-01T00:00:00Z"},
            {"everything": True},
        ],
    )
    def test_bad_input_is_400_and_revokes_nothing(self, admin_client, fleet, tenant, body):
        response = admin_client.post(BULK, body, format="json")
        assert response.status_code == 400, response.content
        assert len(self.live_names(tenant)) == 3

    def test_only_admins(self, operator_client, fleet):
        assert operator_client.post(BULK, {"ids": [str(fleet["old_used"].id)]}, format="json").status_code == 403
