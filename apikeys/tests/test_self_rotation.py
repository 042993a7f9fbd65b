"""POST /agent/key/rotate: a key rotating itself (contract Part 2, "Self-rotation"; issue 16 item 3)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.tests.factories import ApiKeyFactory
from audit.models import AuditEvent
from haltless.testing import client_for_key

pytestmark = pytest.mark.django_db

ROTATE = "/api/v1/agent/key/rotate"
WHOAMI = "/api/v1/agent/whoami"
ROTATE_WITH_CURRENT = {"detail": "Rotate with the current secret of this key."}


def self_rotate(secret: str, **body):
    return client_for_key(secret).post(ROTATE, body, format="json")


def used(secret: str) -> None:
    assert client_for_key(secret).get(WHOAMI).status_code == 200


class TestWithTheCurrentSecret:
    def test_answers_the_new_secret_and_keeps_the_old_one_for_the_overlap(self, api_key):
        used(api_key.secret)
        before = timezone.now()
        response = self_rotate(api_key.secret, overlap_seconds=7200)
        assert response.status_code == 201, response.content
        assert response["Cache-Control"] == "no-store"
        body = response.json()
        assert set(body) == {"key", "key_id", "previous_valid_until"}
        assert body["key_id"] == str(api_key.api_key.id)
        api_key.api_key.refresh_from_db()
        assert timedelta(seconds=7195) < api_key.api_key.previous_valid_until - before <= timedelta(seconds=7205)
        assert client_for_key(body["key"]).get(WHOAMI).json()["secret"] == "current"
        assert client_for_key(api_key.secret).get(WHOAMI).json()["secret"] == "previous"
        event = AuditEvent.objects.get(action="api_key.self_rotate")
        assert event.actor_type == "api_key" and str(event.actor_id) == str(api_key.api_key.id)
        assert body["key"] not in str(event.changes)

    def test_default_overlap_is_an_hour(self, api_key):
        used(api_key.secret)
        self_rotate(api_key.secret)
        api_key.api_key.refresh_from_db()
        assert api_key.api_key.previous_valid_until - timezone.now() > timedelta(minutes=59)

    @pytest.mark.parametrize("overlap", [0, 3599, 604801, "1h", None])
    def test_overlap_below_an_hour_or_above_a_week_is_400(self, api_key, overlap):
        before = ApiKey.objects.filter(pk=api_key.api_key.pk).values().get()
        response = self_rotate(api_key.secret, overlap_seconds=overlap)
        assert response.status_code == 400
        assert "overlap_seconds" in response.json()
        assert ApiKey.objects.filter(pk=api_key.api_key.pk).values("prefix", "key_digest").get() == {
            "prefix": before["prefix"],
            "key_digest": before["key_digest"],
        }

    def test_unknown_field_is_400(self, api_key):
        assert self_rotate(api_key.secret, expires_at="2030-01-01T00:00:00Z").status_code == 400


class TestTheLostAnswer:
    def test_the_previous_secret_may_retry_while_the_new_one_was_never_used(self, api_key):
        used(api_key.secret)
        lost = self_rotate(api_key.secret).json()
        api_key.api_key.refresh_from_db()
        deadline = api_key.api_key.previous_valid_until
        retry = self_rotate(api_key.secret)
        assert retry.status_code == 201
        api_key.api_key.refresh_from_db()
        assert api_key.api_key.previous_valid_until == deadline  # the fleet's secret keeps its deadline
        assert client_for_key(lost["key"]).get(WHOAMI).json() == {"detail": "Invalid API key."}
        assert client_for_key(retry.json()["key"]).get(WHOAMI).json()["secret"] == "current"
        assert AuditEvent.objects.filter(action="api_key.self_rotate").count() == 2

    def test_the_previous_secret_cannot_rotate_once_the_new_one_was_used(self, api_key):
        used(api_key.secret)
        new = self_rotate(api_key.secret).json()["key"]
        used(new)
        response = self_rotate(api_key.secret)
        assert response.status_code == 403
        assert response.json() == ROTATE_WITH_CURRENT
        assert client_for_key(new).get(WHOAMI).json()["secret"] == "current"

    def test_a_previous_secret_past_its_overlap_is_401(self, api_key):
        used(api_key.secret)
        self_rotate(api_key.secret)
        ApiKey.objects.filter(pk=api_key.api_key.pk).update(previous_valid_until=timezone.now() - timedelta(seconds=1))
        assert self_rotate(api_key.secret).json() == {"detail": "API key has been rotated; use the new key."}


class TestLimits:
    def test_at_most_ten_a_day(self, api_key):
        secret = api_key.secret
        for _ in range(10):
            used(secret)
            response = self_rotate(secret)
            assert response.status_code == 201
            secret = response.json()["key"]
        used(secret)
        refused = self_rotate(secret)
        assert refused.status_code == 429
        assert refused.json()["detail"].startswith("A key may rotate itself at most 10 times in 24 hours.")
        assert int(refused["Retry-After"]) > 0
        assert client_for_key(secret).get(WHOAMI).json()["secret"] == "current"
        # A day later it may again.
        AuditEvent.objects.filter(action="api_key.self_rotate").update(occurred_at=timezone.now() - timedelta(days=1))
        assert self_rotate(secret).status_code == 201

    def test_needs_the_agent_scope(self, read_only_key):
        response = self_rotate(read_only_key.secret)
        assert response.status_code == 403
        assert response.json() == {"detail": "API key does not have the required scope: agent"}

    def test_a_jwt_is_403(self, admin_client):
        assert admin_client.post(ROTATE, {}, format="json").status_code == 403

    def test_disabled_or_expired_keys_cannot(self, tenant):
        disabled = ApiKeyFactory(tenant=tenant, disabled=True)
        assert self_rotate(disabled.secret).json() == {"detail": "API key is disabled."}
        expired = ApiKeyFactory(tenant=tenant, expires_at=timezone.now() - timedelta(seconds=1))
        assert self_rotate(expired.secret).json() == {"detail": "API key has expired."}
