"""Answering a leak: public revocation and GitHub's secret-scanning partner alerts, over HTTP."""

import hashlib
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys import keys
from apikeys.models import ApiKey, EnrollmentToken
from apikeys.services import api_key_rotate
from apikeys.tests import github
from audit.models import AuditEvent
from core.caller import Caller
from haltless.testing import client_for_key
from webhooks.models import WebhookDelivery, WebhookEndpoint

REVOKE = "/api/v1/public/credentials/revoke"
GITHUB = "/api/v1/public/secret-scanning/github"
WHOAMI = "/api/v1/agent/whoami"
pytestmark = pytest.mark.django_db

NOT_A_LIST = {"credentials": ["Expected a list of 1 to 1000 strings."]}


def report(*credentials, client=None, **extra):
    return (client or APIClient()).post(REVOKE, {"credentials": list(credentials)}, format="json", **extra)


def works(secret: str) -> bool:
    return client_for_key(secret).get(WHOAMI).status_code == 200


def add_webhook(tenant) -> None:
    # Straight in the database: the endpoint's address is never contacted here (the outbox is only read).
    WebhookEndpoint.objects.create(tenant=tenant, url="https://hooks.example.test/haltless", secret_encrypted="x")


@pytest.fixture
def webhook(tenant):
    add_webhook(tenant)


class TestPublicRevocation:
    def test_a_leaked_key_is_revoked_audited_and_announced(self, api_key, webhook):
        answer = report(api_key.secret)
        assert (answer.status_code, answer.json()) == (202, {})
        assert not works(api_key.secret)
        exposed = AuditEvent.objects.get(action="api_key.exposed")
        assert (exposed.actor_type, exposed.actor_label) == ("public_report", "public_report")
        revoke = AuditEvent.objects.get(action="api_key.revoke")
        assert revoke.actor_type == "public_report"
        assert ApiKey.objects.get().exposed_at is not None
        delivery = WebhookDelivery.objects.get(type="api_key.exposed")
        assert delivery.payload["data"]["key_id"] == str(api_key.api_key.pk)
        assert delivery.payload["data"]["action"] == "revoked"
        assert api_key.secret not in json.dumps(delivery.payload)

    def test_reported_twice_is_one_revocation_and_one_audit_event(self, api_key, webhook):
        report(api_key.secret)
        report(api_key.secret, api_key.secret)
        assert AuditEvent.objects.filter(action="api_key.revoke").count() == 1
        assert AuditEvent.objects.filter(action="api_key.exposed").count() == 1
        assert WebhookDelivery.objects.filter(type="api_key.exposed").count() == 1

    def test_notify_policy_only_flags_the_key(self, api_key, admin_client, tenant):
        answer = admin_client.put("/api/v1/settings/api-key-policy", {"leaked_key_action": "notify"}, format="json")
        assert answer.status_code == 200, answer.json()
        add_webhook(tenant)
        report(api_key.secret)
        report(api_key.secret)
        assert works(api_key.secret)
        key = admin_client.get(f"/api/v1/settings/api-keys/{api_key.api_key.pk}").json()
        assert key["exposed_at"] is not None
        assert admin_client.get("/api/v1/settings/api-keys?exposed=true").json()[0]["id"] == str(api_key.api_key.pk)
        assert AuditEvent.objects.filter(action="api_key.exposed").count() == 1
        assert not AuditEvent.objects.filter(action="api_key.revoke").exists()
        assert WebhookDelivery.objects.get(type="api_key.exposed").payload["data"]["action"] == "flagged"

    def test_a_previous_secret_ends_that_secret_and_keeps_the_key(self, api_key):
        assert works(api_key.secret)  # used: a rotation keeps it as the previous secret
        rotated = api_key_rotate(
            by=Caller.system(tenant_id=api_key.api_key.tenant_id), api_key=api_key.api_key, overlap_seconds=3600
        )
        assert works(api_key.secret)
        report(api_key.secret)
        assert client_for_key(api_key.secret).get(WHOAMI).json() == {
            "detail": "API key has been rotated; use the new key."
        }
        assert works(rotated.secret)
        assert ApiKey.objects.get().revoked_at is None
        assert AuditEvent.objects.get(action="api_key.exposed").changes["matched"] == "previous"

    def test_a_leaked_enrollment_token_is_deleted(self, admin_client):
        created = admin_client.post(
            "/api/v1/settings/enrollment-tokens",
            {"name": "line", "expires_at": (timezone.now() + timedelta(days=1)).isoformat()},
            format="json",
        ).json()
        report(created["token"])
        assert EnrollmentToken.objects.get().deleted_at is not None
        enroll = APIClient()
        enroll.credentials(HTTP_AUTHORIZATION=f"Bearer {created['token']}")
        assert enroll.post("/api/v1/agent/enroll", {"hostname": "gw"}, format="json").status_code == 401
        assert AuditEvent.objects.get(action="enrollment_token.delete").actor_type == "public_report"

    def test_unknown_and_dead_credentials_get_the_same_answer(self, expired_key, revoked_key):
        answer = report(keys.generate_key(), expired_key.secret, revoked_key.secret, "hello", "hlts_short")
        assert (answer.status_code, answer.json()) == (202, {})
        assert not AuditEvent.objects.exists()

    def test_credentials_are_checked_across_tenants_without_a_login(self, other_tenant_key, admin_client):
        answer = report(other_tenant_key.secret, client=admin_client)
        assert answer.status_code == 202
        assert not works(other_tenant_key.secret)

    @pytest.mark.parametrize(
        "body",
        [
            {"credentials": []},
            {"credentials": "hlts_x"},
            {"credentials": [1]},
            {"credentials": [None]},
            {"credentials": ["x" * 257]},
            {"credentials": ["a"] * 1001},
            {},
        ],
    )
    def test_not_a_list_of_1_to_1000_strings_is_a_400(self, body, api_key):
        answer = APIClient().post(REVOKE, body, format="json")
        assert answer.status_code == 400
        if "credentials" in body:
            assert answer.json() == NOT_A_LIST
        assert works(api_key.secret)

    def test_1000_credentials_are_accepted(self):
        assert report(*["x"] * 1000).status_code == 202

    def test_unknown_field_is_a_400(self):
        answer = APIClient().post(REVOKE, {"credentials": ["x"], "who": "me"}, format="json")
        assert (answer.status_code, answer.json()) == (400, {"who": ["Unknown field."]})

    @pytest.mark.parametrize(
        ("body", "content_type"),
        [(b"not json", "application/json"), (b'{"credentials": ["x"]}', "text/plain"), (b"[" * 100_000, "")],
    )
    def test_any_body_answers_202_or_400_never_415(self, body, content_type):
        answer = APIClient().generic("POST", REVOKE, body, content_type=content_type)
        assert answer.status_code in (202, 400)

    def test_oversized_body_is_a_413(self):
        answer = APIClient().generic("POST", REVOKE, b" " * 3_000_000, content_type="application/json")
        assert answer.status_code == 413

    def test_throttled_per_client_address(self):
        answers = [report("x", REMOTE_ADDR="192.0.2.10").status_code for _ in range(31)]
        assert answers == [202] * 30 + [429]
        assert report("x", REMOTE_ADDR="192.0.2.11").status_code == 202
        throttled = report("x", REMOTE_ADDR="192.0.2.10")
        assert int(throttled["Retry-After"]) >= 1

    def test_forwarded_for_does_not_dodge_the_throttle(self):
        answers = [
            report("x", REMOTE_ADDR="192.0.2.12", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code for i in range(31)
        ]
        assert answers[-1] == 429


# --- GitHub's partner program ------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def trusted():
    with override_settings(GITHUB_SECRET_SCANNING_KEYS={"gh-key-1": github.public_pem()}):
        yield


def alert(*tokens) -> bytes:
    return json.dumps(
        [
            {"token": token, "type": "haltless_api_key", "url": "https://github.com/x/y/blob/main/a.env",
             "source": "content", "extra": "ignored"}
            for token in tokens
        ]
    ).encode()  # fmt: skip


def post_alert(body: bytes, signature: str | None, key_id: str | None = "gh-key-1"):
    headers = {}
    if signature is not None:
        headers["HTTP_GITHUB_PUBLIC_KEY_SIGNATURE"] = signature
    if key_id is not None:
        headers["HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER"] = key_id
    return APIClient().generic("POST", GITHUB, body, content_type="application/json", **headers)


class TestGithubSecretScanning:
    def test_a_signed_alert_revokes_live_keys_and_labels_each_token(self, trusted, api_key):
        unknown = keys.generate_key()
        body = alert(api_key.secret, unknown)
        answer = post_alert(body, github.sign(body))
        assert answer.status_code == 200
        assert answer.json() == [
            {
                "token_hash": hashlib.sha256(api_key.secret.encode()).hexdigest(),
                "token_type": "haltless_api_key",
                "label": "true_positive",
            },
            {
                "token_hash": hashlib.sha256(unknown.encode()).hexdigest(),
                "token_type": "haltless_api_key",
                "label": "false_positive",
            },
        ]
        assert not works(api_key.secret)
        assert AuditEvent.objects.get(action="api_key.exposed").actor_type == "public_report"

    @pytest.mark.parametrize("case", ["tampered", "other key", "unknown identifier", "no signature", "garbage"])
    def test_a_bad_signature_is_a_401_and_revokes_nothing(self, trusted, other_key, api_key, case):
        body = alert(api_key.secret)
        signature, key_id = github.sign(body), "gh-key-1"
        if case == "tampered":
            body = body.replace(b"content", b"c0ntent")
        elif case == "other key":
            signature = github.sign(body, other_key)
        elif case == "unknown identifier":
            key_id = "gh-key-2"
        elif case == "no signature":
            signature = None
        else:
            signature = "not base64!"
        answer = post_alert(body, signature, key_id)
        assert (answer.status_code, answer.json()) == (401, {"detail": "Missing or invalid GitHub signature."})
        assert works(api_key.secret)

    def test_no_trusted_keys_configured_refuses_everything(self, api_key):
        body = alert(api_key.secret)
        assert post_alert(body, github.sign(body)).status_code == 401
        assert works(api_key.secret)

    @pytest.mark.parametrize("body", [b"{}", b"[]", b'"x"', b"[{}]", b'[{"token": 1, "type": "t"}]'])
    def test_a_signed_body_that_is_not_a_list_of_alerts_is_a_400(self, trusted, body):
        assert post_alert(body, github.sign(body)).status_code == 400


def test_refusals_are_counted_in_the_metrics(api_key):
    from prometheus_client import REGISTRY

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0

    throttled_before = sample("haltless_rate_limited_requests_total", limit="public_revocation")
    enroll_before = sample("haltless_api_key_auth_failures_total", reason="enrollment_invalid")
    for _ in range(31):
        report("x", REMOTE_ADDR="192.0.2.30")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.generate_key(prefix='hlte_')}")
    assert client.post("/api/v1/agent/enroll", {"hostname": "gw"}, format="json").status_code == 401
    assert sample("haltless_rate_limited_requests_total", limit="public_revocation") == throttled_before + 1
    assert sample("haltless_api_key_auth_failures_total", reason="enrollment_invalid") == enroll_before + 1
