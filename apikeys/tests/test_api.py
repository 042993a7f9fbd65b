import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys import keys
from apikeys.models import ApiKey
from apikeys.tests.factories import ApiKeyFactory
from audit.models import AuditEvent
from core.permissions import ADMIN_REQUIRED, USER_LOGIN_REQUIRED
from core.serializers import UNKNOWN_FIELD

URL = "/api/v1/settings/api-keys"
RESTRICTIONS = {"machines", "allowed_cidrs", "rate_limit"}
LIST_FIELDS = {
    "id", "name", "prefix", "scopes", "tenant_id", "created_at", "expires_at", "last_used_at", "last_used_ip",
    *RESTRICTIONS,
}  # fmt: skip
# Part 2 (issue 16): the life of a key.
LIST_FIELDS |= {"status", "disabled", "exposed_at", "rotation", "policy_violations"}
CREATED_FIELDS = {"id", "name", "key", "scopes", "tenant_id", "created_at", "prefix", "expires_at", *RESTRICTIONS}
# The project URLs plus probe endpoints that declare scopes, to use the keys created here.
pytestmark = [pytest.mark.django_db, pytest.mark.urls("apikeys.tests.urls")]


def detail_url(key_id) -> str:
    return f"{URL}/{key_id}"


def iso(dt) -> str:
    return dt.isoformat().replace("+00:00", "Z")


@pytest.fixture
def role_client(request, admin_client, operator_client, viewer_client):
    return {"admin": admin_client, "operator": operator_client, "viewer": viewer_client}[request.param]


class TestList:
    @pytest.mark.parametrize("role_client", ["admin", "operator", "viewer"], indirect=True)
    def test_every_role_sees_the_tenants_keys_with_prefix_only(self, role_client, api_key, tenant):
        response = role_client.get(URL)
        assert response.status_code == 200
        body = response.json()
        assert isinstance(body, list)
        assert body == [
            {
                "id": str(api_key.api_key.id),
                "name": "test key",
                "prefix": api_key.secret[:12],
                "scopes": ["ingest", "agent"],
                "tenant_id": str(tenant.id),
                "created_at": iso(api_key.api_key.created_at),
                "expires_at": None,
                "last_used_at": None,
                "last_used_ip": None,
                "machines": None,
                "allowed_cidrs": [],
                "rate_limit": {"requests_per_minute": None, "readings_per_minute": None},
                "status": "active",
                "disabled": False,
                "exposed_at": None,
                "rotation": None,
                "policy_violations": [],
            }
        ]
        assert api_key.secret not in response.content.decode()
        assert api_key.api_key.key_digest not in response.content.decode()

    def test_items_have_exactly_the_documented_fields_newest_first(self, admin_client, make_api_key):
        older = make_api_key(name="older")
        newer = make_api_key(name="newer")
        ApiKey.objects.filter(pk=older.api_key.pk).update(created_at=timezone.now() - timedelta(days=1))
        body = admin_client.get(URL).json()
        assert [item["id"] for item in body] == [str(newer.api_key.id), str(older.api_key.id)]
        assert all(set(item) == LIST_FIELDS for item in body)

    def test_revoked_keys_are_not_listed_but_expired_ones_are(self, admin_client, api_key, revoked_key, expired_key):
        body = admin_client.get(URL).json()
        assert {item["id"] for item in body} == {str(api_key.api_key.id), str(expired_key.id)}
        expired = next(item for item in body if item["id"] == str(expired_key.id))
        assert expired["expires_at"] == iso(expired_key.expires_at)

    def test_another_tenants_keys_are_invisible(
        self, admin_client, other_tenant_admin_client, api_key, other_tenant_key
    ):
        mine = admin_client.get(URL).json()
        theirs = other_tenant_admin_client.get(URL).json()
        assert [item["id"] for item in mine] == [str(api_key.api_key.id)]
        assert [item["id"] for item in theirs] == [str(other_tenant_key.api_key.id)]

    def test_empty_tenant_gets_an_empty_array(self, admin_client):
        response = admin_client.get(URL)
        assert response.status_code == 200
        assert response.json() == []

    def test_last_used_at_shows_after_use(self, admin_client, read_only_key, client_with_key):
        assert admin_client.get(URL).json()[0]["last_used_at"] is None
        client_with_key(read_only_key.secret).get("/api/v1/_probe/machines")
        read_only_key.api_key.refresh_from_db()
        assert admin_client.get(URL).json()[0]["last_used_at"] == iso(read_only_key.api_key.last_used_at)

    def test_trailing_slash_is_served_without_redirect(self, viewer_client, api_key):
        response = viewer_client.get(URL + "/")
        assert response.status_code == 200
        assert len(response.json()) == 1

    def test_no_credentials_is_401(self, api_client):
        response = api_client.get(URL)
        assert response.status_code == 401
        assert response.json() == {"detail": "Authentication credentials were not provided."}

    def test_an_api_key_is_refused_with_user_login_detail(self, key_client):
        response = key_client.get(URL)
        assert response.status_code == 403
        assert response.json() == {"detail": USER_LOGIN_REQUIRED}


class TestCreate:
    def test_admin_creates_a_key_shown_once(self, admin_client, admin_user, tenant):
        response = admin_client.post(
            URL, {"name": "edge-agent-prod", "expires_at": "2099-04-04T00:00:00Z", "scopes": ["ingest", "agent"]}
        )
        assert response.status_code == 201
        body = response.json()
        assert set(body) == CREATED_FIELDS
        api_key = ApiKey.objects.get()
        assert body == {
            "id": str(api_key.id),
            "name": "edge-agent-prod",
            "key": body["key"],
            "scopes": ["ingest", "agent"],
            "tenant_id": str(tenant.id),
            "created_at": iso(api_key.created_at),
            "prefix": body["key"][:12],
            "expires_at": "2099-04-04T00:00:00Z",
            "machines": None,
            "allowed_cidrs": [],
            "rate_limit": {"requests_per_minute": None, "readings_per_minute": None},
        }
        assert keys.is_well_formed(body["key"])
        assert api_key.key_digest == keys.digest(body["key"])
        assert api_key.created_by == admin_user
        assert response.headers["Cache-Control"] == "no-store"

    def test_the_key_is_never_shown_again(self, admin_client):
        secret = admin_client.post(URL, {"name": "k"}).json()["key"]
        listing = admin_client.get(URL)
        assert secret not in listing.content.decode()
        assert listing.json()[0]["prefix"] == secret[:12]

    def test_the_new_key_authenticates(self, admin_client, client_with_key):
        secret = admin_client.post(URL, {"name": "k", "scopes": "read_only"}).json()["key"]
        response = client_with_key(secret).get("/api/v1/_probe/machines")
        assert response.status_code == 200

    def test_scopes_omitted_default_to_ingest_and_agent(self, admin_client):
        response = admin_client.post(URL, {"name": "default"})
        assert response.status_code == 201
        assert response.json()["scopes"] == ["ingest", "agent"]
        assert response.json()["expires_at"] is None

    @pytest.mark.parametrize(
        ("requested", "granted"),
        [
            ("read_only", ["read:machines", "read:sensors"]),
            ("edge_agent", ["ingest", "agent"]),
            ("agent", ["agent"]),
            (["read:sensors"], ["read:sensors"]),
            (["read_only", "ingest"], ["read:machines", "read:sensors", "ingest"]),
            (["ingest", "edge_agent", "ingest"], ["ingest", "agent"]),
        ],
    )
    def test_scopes_take_lists_presets_and_mixes_expanded(self, admin_client, requested, granted):
        response = admin_client.post(URL, {"name": "k", "scopes": requested})
        assert response.status_code == 201
        assert response.json()["scopes"] == granted
        assert ApiKey.objects.get().scopes == granted

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"name": "k", "scopes": ["ingest", "write:all"]}, "scopes"),
            ({"name": "k", "scopes": "superuser"}, "scopes"),
            ({"name": "k", "scopes": []}, "scopes"),
            ({"name": "k", "scopes": ""}, "scopes"),
            ({"name": "k", "scopes": None}, "scopes"),
            ({"name": "k", "scopes": 7}, "scopes"),
            ({"name": "k", "scopes": [["ingest"]]}, "scopes"),
            ({"name": "k", "scopes": {"ingest": True}}, "scopes"),
            ({"name": ""}, "name"),
            ({"name": "   "}, "name"),
            ({"name": "x" * 201}, "name"),
            ({"name": None}, "name"),
            ({}, "name"),
            ({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
            ({"name": "k", "expires_at": "not a date"}, "expires_at"),
        ],
    )
    def test_invalid_input_is_400_naming_the_field_and_creates_nothing(self, admin_client, payload, field):
        response = admin_client.post(URL, payload)
        assert response.status_code == 400
        body = response.json()
        assert list(body) == [field]
        assert isinstance(body[field], list) and body[field]
        assert not ApiKey.objects.exists()

    def test_unknown_scope_message_names_it(self, admin_client):
        response = admin_client.post(URL, {"name": "k", "scopes": ["ingest", "write:all"]})
        assert response.status_code == 400
        assert "'write:all'" in response.json()["scopes"][0]

    def test_expiry_just_passed_is_400(self, admin_client):
        response = admin_client.post(URL, {"name": "k", "expires_at": iso(timezone.now() - timedelta(seconds=1))})
        assert response.status_code == 400
        assert response.json() == {"expires_at": ["The expiry must be in the future."]}

    def test_unknown_field_is_400(self, admin_client):
        response = admin_client.post(URL, {"name": "k", "scope": ["ingest"]})
        assert response.status_code == 400
        assert response.json() == {"scope": [UNKNOWN_FIELD]}
        assert not ApiKey.objects.exists()

    @pytest.mark.parametrize("field", ["key", "prefix", "tenant_id", "id"])
    def test_server_chosen_fields_cannot_be_sent(self, admin_client, field):
        response = admin_client.post(URL, {"name": "k", field: "x"})
        assert response.status_code == 400
        assert response.json() == {field: [UNKNOWN_FIELD]}

    def test_name_is_trimmed(self, admin_client):
        response = admin_client.post(URL, {"name": "  line 3  "})
        assert response.status_code == 201
        assert response.json()["name"] == "line 3"

    def test_trailing_slash_is_served_without_redirect(self, admin_client):
        response = admin_client.post(URL + "/", {"name": "k"})
        assert response.status_code == 201

    @pytest.mark.parametrize("role_client", ["operator", "viewer"], indirect=True)
    def test_non_admins_are_403(self, role_client):
        response = role_client.post(URL, {"name": "k"})
        assert response.status_code == 403
        assert response.json() == {"detail": ADMIN_REQUIRED}
        assert not ApiKey.objects.exists()

    def test_an_api_key_cannot_create_keys(self, key_client, api_key):
        response = key_client.post(URL, {"name": "k"})
        assert response.status_code == 403
        assert response.json() == {"detail": USER_LOGIN_REQUIRED}
        assert ApiKey.objects.count() == 1

    def test_no_credentials_is_401(self, api_client, db):
        response = api_client.post(URL, {"name": "k"})
        assert response.status_code == 401
        assert not ApiKey.objects.exists()

    def test_key_belongs_to_the_creators_tenant(self, other_tenant_admin_client, other_tenant):
        response = other_tenant_admin_client.post(URL, {"name": "k"})
        assert response.status_code == 201
        assert response.json()["tenant_id"] == str(other_tenant.id)

    def test_creation_is_audited_without_the_secret(self, admin_client, admin_user, tenant):
        response = admin_client.post(URL, {"name": "k", "scopes": "read_only"}, REMOTE_ADDR="10.1.2.3")
        secret = response.json()["key"]
        event = AuditEvent.objects.get(action="api_key.create")
        assert event.tenant_id == tenant.id
        assert event.actor_id == admin_user.id
        assert event.target_id == response.json()["id"]
        assert event.changes["scopes"] == ["read:machines", "read:sensors"]
        assert str(event.client_ip) == "10.1.2.3"
        assert secret not in str(event.changes) + event.target_label + event.actor_label
        assert keys.digest(secret) not in str(event.changes)


class TestRevoke:
    def test_admin_revokes_and_the_key_stops_working_at_once(self, admin_client, api_key, client_with_key):
        agent = client_with_key(api_key.secret)
        assert agent.get("/api/v1/_probe/agent").status_code == 200
        response = admin_client.delete(detail_url(api_key.api_key.id))
        assert response.status_code == 204
        assert response.content == b""
        after = agent.get("/api/v1/_probe/agent")
        assert after.status_code == 401
        assert after.json() == {"detail": "API key has been revoked."}
        api_key.api_key.refresh_from_db()
        assert api_key.api_key.revoked_at is not None

    def test_revoked_key_disappears_from_the_list(self, admin_client, api_key):
        admin_client.delete(detail_url(api_key.api_key.id))
        assert admin_client.get(URL).json() == []

    def test_revoking_twice_is_404(self, admin_client, api_key):
        assert admin_client.delete(detail_url(api_key.api_key.id)).status_code == 204
        response = admin_client.delete(detail_url(api_key.api_key.id))
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}

    def test_unknown_key_is_404(self, admin_client):
        response = admin_client.delete(detail_url(uuid.uuid4()))
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}

    def test_not_a_uuid_is_404(self, admin_client):
        response = admin_client.delete(detail_url("not-a-uuid"))
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}

    def test_another_tenants_key_is_404_and_keeps_working(self, admin_client, other_tenant_key, client_with_key):
        response = admin_client.delete(detail_url(other_tenant_key.api_key.id))
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}
        other_tenant_key.api_key.refresh_from_db()
        assert other_tenant_key.api_key.revoked_at is None
        assert client_with_key(other_tenant_key.secret).get("/api/v1/_probe/machines").status_code == 200

    @pytest.mark.parametrize("role_client", ["operator", "viewer"], indirect=True)
    def test_non_admins_are_403(self, role_client, api_key):
        response = role_client.delete(detail_url(api_key.api_key.id))
        assert response.status_code == 403
        assert response.json() == {"detail": ADMIN_REQUIRED}
        api_key.api_key.refresh_from_db()
        assert api_key.api_key.revoked_at is None

    def test_a_key_cannot_revoke_itself(self, key_client, api_key):
        response = key_client.delete(detail_url(api_key.api_key.id))
        assert response.status_code == 403
        assert response.json() == {"detail": USER_LOGIN_REQUIRED}

    def test_trailing_slash_is_served_without_redirect(self, admin_client, api_key):
        assert admin_client.delete(detail_url(api_key.api_key.id) + "/").status_code == 204

    def test_revocation_is_audited(self, admin_client, admin_user, api_key):
        admin_client.delete(detail_url(api_key.api_key.id))
        event = AuditEvent.objects.get(action="api_key.revoke")
        assert event.actor_id == admin_user.id
        assert event.target_id == str(api_key.api_key.id)

    def test_expired_keys_can_be_revoked(self, admin_client, expired_key):
        assert admin_client.delete(detail_url(expired_key.id)).status_code == 204

    def test_an_already_revoked_factory_key_is_404(self, admin_client, tenant):
        revoked = ApiKeyFactory(tenant=tenant, revoked_at=timezone.now())
        assert admin_client.delete(detail_url(revoked.id)).status_code == 404
