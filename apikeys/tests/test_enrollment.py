"""Enrollment tokens and POST /agent/enroll: a fleet of edge devices, each with a key of its own."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys import keys
from apikeys.models import ApiKey, EnrollmentToken
from audit.models import AuditEvent
from haltless.testing import client_for_key
from telemetry.tests.factories import MachineFactory

TOKENS = "/api/v1/settings/enrollment-tokens"
ENROLL = "/api/v1/agent/enroll"
INVALID = {"detail": "Invalid enrollment token."}


def soon(**delta) -> str:
    return (timezone.now() + timedelta(**(delta or {"days": 1}))).isoformat()


def token_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def make_token(admin_client):
    def make(**body) -> dict:
        answer = admin_client.post(TOKENS, {"name": "line-3", "expires_at": soon(), **body}, format="json")
        assert answer.status_code == 201, answer.json()
        return answer.json()

    return make


def enroll(secret: str, hostname: str = "gw-01", **body):
    return token_client(secret).post(ENROLL, {"hostname": hostname, **body}, format="json")


class TestEnrollmentTokens:
    def test_created_once_then_listed_without_the_secret(self, admin_client, make_token):
        created = make_token(max_uses=5, key_expires_in_days=90)
        assert created["token"].startswith("hlte_")
        assert keys.is_well_formed(created["token"], prefix="hlte_")
        assert created["uses"] == 0 and created["max_uses"] == 5 and created["scopes"] == ["ingest", "agent"]
        listed = admin_client.get(TOKENS).json()
        assert [item["id"] for item in listed] == [created["id"]]
        assert "token" not in listed[0]
        assert listed[0]["prefix"] == created["token"][:12]
        stored = EnrollmentToken.objects.get()
        assert created["token"] not in (stored.token_digest, stored.prefix)

    def test_create_answer_is_not_cached(self, admin_client):
        answer = admin_client.post(TOKENS, {"name": "t", "expires_at": soon()}, format="json")
        assert answer["Cache-Control"] == "no-store"

    @pytest.mark.parametrize(
        ("body", "field", "message"),
        [
            ({"max_uses": 0}, "max_uses", "Ensure this value is between 1 and 1000."),
            ({"max_uses": 1001}, "max_uses", "Ensure this value is between 1 and 1000."),
            ({"expires_at": None}, "expires_at", "This field may not be null."),
            ({"key_expires_in_days": 731}, "key_expires_in_days", "Ensure this value is between 1 and 730, or null."),
            ({"key_expires_in_days": 0}, "key_expires_in_days", "Ensure this value is between 1 and 730, or null."),
            ({"scopes": ["nope"]}, "scopes", None),
            ({"machines": []}, "machines", "Give at least one machine, or null for every machine of the tenant."),
            ({"machines": ["no-such"]}, "machines", "Unknown machine: 'no-such'."),
            ({"name": ""}, "name", "This field may not be blank."),
            ({"colour": "red"}, "colour", "Unknown field."),
        ],
    )
    def test_bad_input_is_a_400_naming_the_field_and_creates_nothing(self, admin_client, body, field, message):
        answer = admin_client.post(TOKENS, {"name": "t", "expires_at": soon(), **body}, format="json")
        assert answer.status_code == 400
        assert field in answer.json()
        if message:
            assert answer.json()[field] == [message]
        assert not EnrollmentToken.objects.exists()

    @pytest.mark.parametrize("expires", [{"days": 7, "minutes": 1}, {"minutes": -1}])
    def test_expiry_within_seven_days(self, admin_client, expires):
        answer = admin_client.post(TOKENS, {"name": "t", "expires_at": soon(**expires)}, format="json")
        assert answer.status_code == 400
        assert answer.json() == {"expires_at": ["Ensure the expiry is in the future and within 7 days."]}

    def test_expiry_just_inside_seven_days_is_accepted(self, admin_client):
        answer = admin_client.post(TOKENS, {"name": "t", "expires_at": soon(days=7, minutes=-1)}, format="json")
        assert answer.status_code == 201

    def test_other_roles_and_api_keys_cannot_manage_tokens(self, operator_client, key_client):
        assert operator_client.get(TOKENS).status_code == 403
        assert key_client.post(TOKENS, {"name": "t", "expires_at": soon()}, format="json").status_code == 403

    def test_another_tenants_token_is_not_found(self, make_token, other_tenant_admin_client):
        created = make_token()
        assert other_tenant_admin_client.get(TOKENS).json() == []
        assert other_tenant_admin_client.delete(f"{TOKENS}/{created['id']}").status_code == 404
        assert EnrollmentToken.objects.get().deleted_at is None

    def test_delete_stops_enrollment_and_keeps_keys_unless_asked(self, admin_client, make_token):
        created = make_token(max_uses=3)
        device = enroll(created["token"]).json()
        assert admin_client.delete(f"{TOKENS}/{created['id']}").status_code == 204
        assert enroll(created["token"], "gw-02").status_code == 401
        assert client_for_key(device["key"]).get("/api/v1/agent/whoami").status_code == 200
        assert admin_client.get(TOKENS).json() == []
        assert AuditEvent.objects.filter(action="enrollment_token.delete").count() == 1

    def test_delete_with_revoke_keys_revokes_every_key_it_enrolled(self, admin_client, make_token):
        created = make_token(max_uses=3)
        first, second = enroll(created["token"], "gw-01").json(), enroll(created["token"], "gw-02").json()
        answer = admin_client.delete(f"{TOKENS}/{created['id']}?revoke_keys=true")
        assert answer.status_code == 204
        for device in (first, second):
            assert client_for_key(device["key"]).get("/api/v1/agent/whoami").json() == {
                "detail": "API key has been revoked."
            }
        assert AuditEvent.objects.filter(action="api_key.revoke").count() == 2

    def test_list_counts_the_keys_each_token_enrolled(self, admin_client, make_token):
        created = make_token(max_uses=3)
        enroll(created["token"], "a")
        enroll(created["token"], "b")
        assert admin_client.get(TOKENS).json()[0]["keys_enrolled"] == 2
        assert admin_client.get(TOKENS).json()[0]["uses"] == 2


class TestEnroll:
    def test_a_device_gets_a_key_of_its_own(self, make_token, tenant):
        machine = MachineFactory(tenant=tenant, external_id="press-7")
        created = make_token(name="line-3", machines=["press-7"], key_expires_in_days=30)
        answer = enroll(created["token"], "GW-01.plant", agent_version="2.4.1")
        assert answer.status_code == 201
        assert answer["Cache-Control"] == "no-store"
        body = answer.json()
        assert body["name"] == "line-3/gw-01.plant"
        assert body["scopes"] == ["ingest", "agent"]
        assert body["machines"] == ["press-7"]
        assert body["tenant_id"] == str(tenant.id)
        assert body["expires_at"] is not None
        api_key = ApiKey.objects.get(pk=body["key_id"])
        assert api_key.machine_ids == [str(machine.id)]
        assert api_key.enrollment_token_id == EnrollmentToken.objects.get().id
        whoami = client_for_key(body["key"]).get("/api/v1/agent/whoami")
        assert whoami.status_code == 200 and whoami.json()["name"] == "line-3/gw-01.plant"
        event = AuditEvent.objects.get(action="api_key.enroll")
        assert event.actor_type == "enrollment_token"
        assert event.changes["hostname"] == "gw-01.plant" and event.changes["agent_version"] == "2.4.1"
        assert body["key"] not in str(event.changes)

    def test_a_device_may_ask_for_a_subset_of_the_tokens_machines(self, make_token, tenant):
        MachineFactory(tenant=tenant, external_id="press-7")
        MachineFactory(tenant=tenant, external_id="press-8")
        created = make_token(machines=["press-7", "press-8"])
        assert enroll(created["token"], machines=["press-8"]).json()["machines"] == ["press-8"]

    def test_a_device_cannot_widen_the_tokens_machines(self, make_token, tenant):
        MachineFactory(tenant=tenant, external_id="press-7")
        MachineFactory(tenant=tenant, external_id="press-8")
        created = make_token(machines=["press-7"])
        answer = enroll(created["token"], machines=["press-8"])
        assert answer.status_code == 400
        assert answer.json() == {"machines": ["Ask only for machines of the enrollment token."]}
        assert EnrollmentToken.objects.get().uses == 0

    @pytest.mark.parametrize("hostname", ["", "a" * 64, "gw_01", "gw 01", "gw/01", "gw-ü"])
    def test_bad_hostname_is_a_400(self, make_token, hostname):
        created = make_token()
        answer = enroll(created["token"], hostname)
        assert answer.status_code == 400
        assert "hostname" in answer.json()
        assert not ApiKey.objects.exists()

    def test_a_63_character_hostname_is_accepted(self, make_token):
        assert enroll(make_token()["token"], "a" * 63).status_code == 201

    def test_second_enrollment_of_a_hostname_is_a_409(self, make_token):
        created = make_token(max_uses=5)
        assert enroll(created["token"], "gw-01").status_code == 201
        answer = enroll(created["token"], "GW-01")
        assert answer.status_code == 409
        assert answer.json() == {
            "detail": 'This hostname already has a key from this token; send "replace": true only if that key '
            "was never used."
        }
        assert ApiKey.objects.active().count() == 1

    def test_replace_of_a_never_used_key_is_a_retry_that_uses_no_use(self, make_token):
        created = make_token(max_uses=1)
        lost = enroll(created["token"]).json()
        retried = enroll(created["token"], replace=True)
        assert retried.status_code == 201
        assert EnrollmentToken.objects.get().uses == 1
        assert client_for_key(lost["key"]).get("/api/v1/agent/whoami").status_code == 401
        assert client_for_key(retried.json()["key"]).get("/api/v1/agent/whoami").status_code == 200

    def test_replace_of_a_used_key_is_a_409_so_a_working_device_cannot_be_taken_over(self, make_token):
        created = make_token(max_uses=1)
        working = enroll(created["token"]).json()
        assert client_for_key(working["key"]).get("/api/v1/agent/whoami").status_code == 200
        assert enroll(created["token"], replace=True).status_code == 409
        assert client_for_key(working["key"]).get("/api/v1/agent/whoami").status_code == 200

    def test_a_used_up_token_is_refused(self, make_token):
        created = make_token(max_uses=1)
        enroll(created["token"], "gw-01")
        answer = enroll(created["token"], "gw-02")
        assert (answer.status_code, answer.json()) == (401, INVALID)
        assert answer["WWW-Authenticate"] == 'Bearer realm="enroll"'

    def test_a_hostname_whose_key_expired_can_enroll_again(self, make_token):
        created = make_token(max_uses=2)
        first = enroll(created["token"]).json()
        ApiKey.objects.filter(pk=first["key_id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
        assert enroll(created["token"]).status_code == 201
        assert EnrollmentToken.objects.get().uses == 2

    def test_the_key_policy_applies_to_minted_keys(self, make_token, admin_client):
        created = make_token()
        policy = admin_client.put("/api/v1/settings/api-key-policy", {"require_expiry": True}, format="json")
        assert policy.status_code == 200, policy.json()
        answer = enroll(created["token"])
        assert answer.status_code == 400
        assert list(answer.json()) == ["expires_at"]
        assert EnrollmentToken.objects.get().uses == 0

    def test_token_creation_against_the_policy_is_a_400(self, admin_client):
        admin_client.put("/api/v1/settings/api-key-policy", {"max_lifetime_days": 30}, format="json")
        answer = admin_client.post(
            TOKENS, {"name": "t", "expires_at": soon(), "key_expires_in_days": 31}, format="json"
        )
        assert answer.status_code == 400
        assert list(answer.json()) == ["key_expires_in_days"]


class TestEveryRefusalLooksTheSame:
    @pytest.fixture
    def refusals(self, make_token, api_key, tenant):
        live = make_token()
        expired = make_token()
        EnrollmentToken.objects.filter(pk=expired["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
        deleted = make_token()
        EnrollmentToken.objects.filter(pk=deleted["id"]).update(deleted_at=timezone.now())
        used_up = make_token(max_uses=1)
        enroll(used_up["token"], "first")
        unknown = keys.generate_key(prefix="hlte_")
        malformed = live["token"][:-1] + ("A" if live["token"][-1] != "A" else "B")
        return {
            "unknown": unknown,
            "malformed": malformed,
            "an API key": api_key.secret,
            "expired": expired["token"],
            "deleted": deleted["token"],
            "used up": used_up["token"],
        }

    def test_unknown_malformed_api_key_expired_deleted_used_up(self, refusals):
        for label, secret in refusals.items():
            answer = enroll(secret, "gw-new")
            assert (answer.status_code, answer.json()) == (401, INVALID), label

    def test_an_api_key_in_x_api_key_or_no_credential(self, api_key):
        with_header = APIClient()
        with_header.credentials(HTTP_X_API_KEY=api_key.secret)
        for client in (with_header, APIClient()):
            answer = client.post(ENROLL, {"hostname": "gw"}, format="json")
            assert (answer.status_code, answer.json()) == (401, INVALID)

    def test_a_user_login_is_refused_the_same_way(self, admin_client):
        answer = admin_client.post(ENROLL, {"hostname": "gw"}, format="json")
        assert (answer.status_code, answer.json()) == (401, INVALID)

    def test_an_enrollment_token_is_not_an_api_key(self, make_token):
        secret = make_token()["token"]
        for header in ({"HTTP_AUTHORIZATION": f"Bearer {secret}"}, {"HTTP_X_API_KEY": secret}):
            client = APIClient()
            client.credentials(**header)
            answer = client.get("/api/v1/agent/heartbeat")
            assert answer.status_code == 401, header
