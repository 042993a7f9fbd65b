"""Signed webhooks through the durable outbox (contract Part 2, "Webhooks"; issue 16 item 7)."""

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from core.caller import Caller
from haltless.testing import client_for_key
from webhooks import sender, services
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import RETRY_DELAYS, webhook_delivery_attempt, webhook_event_enqueue

POLICY = "/api/v1/settings/api-key-policy"
DELIVERIES = "/api/v1/settings/webhook-deliveries"


def set_webhook(admin_client, url: str) -> str:
    response = admin_client.put(POLICY, {"webhook_url": url}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["webhook_secret"]


def verify(secret: str, request: dict) -> int:
    """Check X-Haltless-Signature the way a receiver would; returns its `t`."""
    header = request["headers"]["X-Haltless-Signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + request["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    return int(parts["t"])


def enqueue(tenant, type="api_key.rotated", data=None) -> WebhookDelivery:
    with transaction.atomic():
        return webhook_event_enqueue(by=Caller.system(tenant_id=tenant.id), type=type, data=data or {"key_id": "k"})


@pytest.mark.django_db
class TestEndpointSetting:
    def test_secret_is_shown_once_and_stored_encrypted(self, admin_client, tenant, allow_loopback, ok_endpoint):
        secret = set_webhook(admin_client, ok_endpoint.url)
        assert secret.startswith("whsec_")
        row = WebhookEndpoint.objects.filter(tenant=tenant).values().get()
        assert secret not in str(row)
        again = admin_client.put(POLICY, {"webhook_url": ok_endpoint.url}, format="json").json()
        assert "webhook_secret" not in again
        assert admin_client.get(POLICY).json()["webhook_url"] == ok_endpoint.url

    def test_non_admins_see_the_origin_only(self, admin_client, viewer_client, allow_loopback, ok_endpoint):
        set_webhook(admin_client, ok_endpoint.url)
        assert viewer_client.get(POLICY).json()["webhook_url"] == ok_endpoint.url.rsplit("/hooks", 1)[0]

    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.1/hook",
            "http://192.168.1.50/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00::1]/hook",
            "http://127.0.0.1/hook",
            "http://localhost/hook",
            "http://hooks.localhost./hook",  # a localhost name with its final dot (core.guarded_fetch)
            "http://0.0.0.0/hook",
            "http://[::ffff:10.0.0.1]/hook",
            "http://[64:ff9b::10.0.0.1]/hook",
            "http://[64:ff9b:1:a00:1::]/hook",
            "http://[2002:c0a8:101::1]/hook",
            "http://[2001:db8::1]/hook",
        ],
    )
    def test_refused_addresses_are_400_without_connecting(self, admin_client, tenant, url, no_connect):
        response = admin_client.put(POLICY, {"webhook_url": url}, format="json")
        assert response.status_code == 400
        assert response.json() == {"webhook_url": ["This address is not allowed for a webhook."]}
        assert not WebhookEndpoint.objects.filter(tenant=tenant).exists()
        assert no_connect == []

    def test_public_addresses_in_any_form_are_accepted(self, admin_client, no_connect):
        for url in ("https://8.8.8.8/hook", "https://[64:ff9b::8.8.8.8]/hook", "https://[2606:4700::1111]/hook"):
            assert admin_client.put(POLICY, {"webhook_url": url}, format="json").status_code == 200, url
        assert no_connect == []

    @pytest.mark.parametrize("url", ["ftp://hooks.example.test/x", "hooks.example.test", "http://u:p@x.test/", ""])
    def test_bad_urls_are_400(self, admin_client, url):
        assert admin_client.put(POLICY, {"webhook_url": url}, format="json").status_code == 400

    def test_a_malformed_url_says_why(self, admin_client, no_connect):
        response = admin_client.put(POLICY, {"webhook_url": "http://u:p@hooks.example.test/"}, format="json")
        assert response.json() == {"webhook_url": ["The URL must not contain a user name or password."]}

    def test_private_lan_when_the_operator_allows_it(self, admin_client, settings, no_connect):
        settings.WEBHOOK_ALLOW_PRIVATE = True
        assert admin_client.put(POLICY, {"webhook_url": "http://192.168.1.50/hook"}, format="json").status_code == 200
        assert admin_client.put(POLICY, {"webhook_url": "http://169.254.169.254/"}, format="json").status_code == 400
        assert no_connect == []

    def test_clearing_the_url(self, admin_client, tenant, allow_loopback, ok_endpoint):
        set_webhook(admin_client, ok_endpoint.url)
        assert admin_client.put(POLICY, {"webhook_url": None}, format="json").json()["webhook_url"] is None
        assert not WebhookEndpoint.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db
class TestOutbox:
    def test_nothing_is_queued_without_a_webhook_url(self, tenant):
        assert enqueue(tenant) is None
        assert not WebhookDelivery.objects.exists()

    def test_an_event_exists_only_if_its_cause_committed(self, admin_client, tenant, allow_loopback, ok_endpoint):
        set_webhook(admin_client, ok_endpoint.url)
        with pytest.raises(RuntimeError), transaction.atomic():
            webhook_event_enqueue(by=Caller.system(tenant_id=tenant.id), type="api_key.rotated", data={})
            raise RuntimeError("the cause fails")
        assert not WebhookDelivery.objects.exists()

    def test_unknown_type_is_a_programming_error(self, tenant):
        with pytest.raises(ValueError):
            webhook_event_enqueue(by=Caller.system(tenant_id=tenant.id), type="api_key.nope", data={})

    def test_rotation_queues_api_key_rotated_and_sends_nothing_in_the_request(
        self, admin_client, tenant, allow_loopback, ok_endpoint, api_key
    ):
        set_webhook(admin_client, ok_endpoint.url)
        response = admin_client.post(f"/api/v1/settings/api-keys/{api_key.api_key.id}/rotate", {}, format="json")
        assert response.status_code == 201
        delivery = WebhookDelivery.objects.get()
        assert delivery.type == "api_key.rotated"
        assert delivery.payload["data"]["key_id"] == str(api_key.api_key.id)
        assert delivery.status == "pending" and delivery.attempts == 0
        assert ok_endpoint.connections == []  # the request itself sent nothing

    def test_self_rotation_queues_api_key_rotated(self, admin_client, allow_loopback, ok_endpoint, api_key):
        set_webhook(admin_client, ok_endpoint.url)
        client_for_key(api_key.secret).post("/api/v1/agent/key/rotate", {}, format="json")
        delivery = WebhookDelivery.objects.get()
        assert delivery.type == "api_key.rotated"
        assert delivery.payload["data"]["self_rotation"] is True


@pytest.mark.django_db
class TestDelivery:
    def test_signed_body_with_the_event_fields(self, admin_client, tenant, allow_loopback, ok_endpoint):
        secret = set_webhook(admin_client, ok_endpoint.url)
        delivery = enqueue(tenant, data={"key_id": "abc"})
        done = webhook_delivery_attempt(delivery_id=delivery.pk)
        assert done.status == "delivered" and done.status_code == 204 and done.attempts == 1
        assert done.delivered_at is not None and done.error == ""
        (request,) = ok_endpoint.received
        assert request["path"] == "/hooks/haltless"
        assert request["headers"]["Content-Type"] == "application/json"
        body = json.loads(request["body"])
        assert set(body) == {"id", "type", "created_at", "tenant_id", "data"}
        assert body["id"] == str(delivery.event_id) and body["type"] == "api_key.rotated"
        assert body["tenant_id"] == str(tenant.id) and body["data"] == {"key_id": "abc"}
        assert abs(verify(secret, request) - time.time()) < 5

    def test_a_wrong_secret_does_not_verify(self, admin_client, tenant, allow_loopback, ok_endpoint):
        set_webhook(admin_client, ok_endpoint.url)
        webhook_delivery_attempt(delivery_id=enqueue(tenant).pk)
        with pytest.raises(AssertionError):
            verify("whsec_wrong", ok_endpoint.received[0])

    def test_500_is_retried_on_schedule_then_failed_each_attempt_resigned(
        self, admin_client, tenant, allow_loopback, failing_endpoint, monkeypatch
    ):
        secret = set_webhook(admin_client, failing_endpoint.url)
        delivery = enqueue(tenant)
        clock = iter(range(1_800_000_000, 1_800_000_100))
        monkeypatch.setattr(sender.time, "time", lambda: next(clock))
        now = timezone.now()
        for attempt in range(1, 7):
            assert webhook_delivery_attempt(delivery_id=delivery.pk, now=now - timedelta(seconds=1)) is None  # not due
            delivery = webhook_delivery_attempt(delivery_id=delivery.pk, now=now)
            assert delivery.attempts == attempt
            assert delivery.status_code == 500
            assert delivery.error == "The endpoint answered HTTP 500."
            if attempt < 6:
                assert delivery.status == "pending"
                assert delivery.next_attempt_at == now + RETRY_DELAYS[attempt]
                now = delivery.next_attempt_at
        assert delivery.status == "failed" and delivery.next_attempt_at is None
        assert [timedelta(0), *[RETRY_DELAYS[i] for i in range(1, 6)]] == [
            timedelta(0),
            timedelta(minutes=1),
            timedelta(minutes=5),
            timedelta(minutes=30),
            timedelta(hours=2),
            timedelta(hours=6),
        ]
        assert len(failing_endpoint.received) == 6
        stamps = [verify(secret, request) for request in failing_endpoint.received]
        assert len(set(stamps)) == 6  # a fresh `t` each time
        assert len({json.loads(r["body"])["id"] for r in failing_endpoint.received}) == 1  # the same event id
        assert webhook_delivery_attempt(delivery_id=delivery.pk, now=now + timedelta(days=1)) is None

    def test_a_redirect_is_not_followed(self, admin_client, tenant, allow_loopback, redirecting_endpoint):
        set_webhook(admin_client, redirecting_endpoint.url)
        delivery = webhook_delivery_attempt(delivery_id=enqueue(tenant).pk)
        assert delivery.status == "pending" and delivery.status_code == 302
        assert delivery.error == "The endpoint answered HTTP 302."
        assert len(redirecting_endpoint.received) == 1

    def test_a_hanging_endpoint_is_cut_off_and_retried(
        self, admin_client, tenant, allow_loopback, hanging_endpoint, short_attempts
    ):
        set_webhook(admin_client, hanging_endpoint.url)
        started = time.monotonic()
        delivery = webhook_delivery_attempt(delivery_id=enqueue(tenant).pk)
        assert time.monotonic() - started < 4.0  # the 2 s attempt deadline, not the endpoint's 5 s hang
        assert delivery.status == "pending" and delivery.attempts == 1
        assert delivery.status_code is None
        assert delivery.error == "Could not connect to the webhook endpoint."

    def test_a_closed_port_gives_the_same_fixed_error(self, admin_client, tenant, allow_loopback, ok_endpoint):
        set_webhook(admin_client, "http://127.0.0.1:9/hook")  # discard port: nothing listens
        delivery = webhook_delivery_attempt(delivery_id=enqueue(tenant).pk)
        assert delivery.error == "Could not connect to the webhook endpoint."
        assert delivery.status == "pending"

    @pytest.mark.parametrize("address", ["10.1.2.3", "169.254.169.254", "127.0.0.1", "::ffff:192.168.0.9", "fe80::1"])
    def test_a_name_resolving_to_a_refused_address_is_never_connected_nor_retried(
        self, tenant, resolves_to, no_connect, address
    ):
        resolves_to("hooks.example.test", address)
        services.webhook_endpoint_set(by=Caller.system(tenant_id=tenant.id), url="http://hooks.example.test/hook")
        delivery = webhook_delivery_attempt(delivery_id=enqueue(tenant).pk)
        assert no_connect == []
        assert delivery.status == "failed" and delivery.attempts == 1
        assert delivery.error == "The webhook URL's address is not allowed."
        assert delivery.next_attempt_at is None
        assert services.webhook_deliveries_send_due(now=timezone.now() + timedelta(days=1)) == 0
        assert no_connect == []

    def test_the_sweep_sends_what_is_due(self, admin_client, tenant, allow_loopback, ok_endpoint):
        set_webhook(admin_client, ok_endpoint.url)
        enqueue(tenant)
        enqueue(tenant)
        assert services.webhook_deliveries_send_due() == 2
        assert services.webhook_deliveries_send_due() == 0
        assert len(ok_endpoint.received) == 2

    def test_a_claimed_delivery_is_not_sent_twice(self, admin_client, tenant, allow_loopback, ok_endpoint):
        set_webhook(admin_client, ok_endpoint.url)
        delivery = enqueue(tenant)
        assert services._claim(delivery.pk, timezone.now()) is not None
        assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
        assert ok_endpoint.received == []


# PostgreSQL only: the SQLite test database is in memory with a shared cache, where a second thread's
# write is refused at once ("database table is locked") instead of waiting as the embedded mode's
# SQLite file does (busy timeout, WAL); the sender thread and this test's polling then collide.
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestNeverInsideARequest:
    def test_a_hanging_endpoint_does_not_slow_the_request_and_is_retried(
        self, admin_client, tenant, settings, allow_loopback, hanging_endpoint, short_attempts, api_key
    ):
        """The embedded sender thread delivers after the answer; the request never waits on it."""
        settings.WEBHOOK_EMBEDDED_SENDER = True
        set_webhook(admin_client, hanging_endpoint.url)
        started = time.monotonic()
        response = admin_client.post(f"/api/v1/settings/api-keys/{api_key.api_key.id}/rotate", {}, format="json")
        assert response.status_code == 201
        assert time.monotonic() - started < 2.0  # less than one attempt's deadline: nothing was awaited
        deadline = time.monotonic() + 10
        delivery = WebhookDelivery.objects.get()
        while time.monotonic() < deadline:
            delivery.refresh_from_db()
            if delivery.attempts:
                break
            time.sleep(0.1)
        assert hanging_endpoint.connections, "the background sender never tried"
        assert delivery.attempts == 1 and delivery.status == "pending"
        assert delivery.error == "Could not connect to the webhook endpoint."
        assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=50)


@pytest.mark.django_db
class TestDeliveriesApi:
    def test_newest_first_paginated_with_the_contract_fields(self, admin_client, tenant, allow_loopback, ok_endpoint):
        set_webhook(admin_client, ok_endpoint.url)
        first = enqueue(tenant)
        second = enqueue(tenant)
        WebhookDelivery.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(minutes=1))
        webhook_delivery_attempt(delivery_id=first.pk)
        body = admin_client.get(DELIVERIES).json()
        assert set(body) == {"count", "next", "previous", "results"}
        assert [item["id"] for item in body["results"]] == [str(second.pk), str(first.pk)]
        item = body["results"][1]
        assert {"id", "event_id", "type", "status_code", "attempts", "delivered_at", "error"} <= set(item)
        assert item["status_code"] == 204 and item["attempts"] == 1 and item["delivered_at"]

    def test_other_tenants_deliveries_are_invisible(self, admin_client, other_tenant_admin, other_tenant, tenant):
        services.webhook_endpoint_set(by=Caller.system(tenant_id=other_tenant.id), url="https://hooks.example.com/x")
        theirs = enqueue(other_tenant)
        assert admin_client.get(DELIVERIES).json()["results"] == []
        assert admin_client.post(f"{DELIVERIES}/{theirs.pk}/redeliver").status_code == 404

    def test_redeliver_sends_the_same_event_again(self, admin_client, tenant, allow_loopback, ok_endpoint, admin_user):
        set_webhook(admin_client, ok_endpoint.url)
        delivery = enqueue(tenant)
        webhook_delivery_attempt(delivery_id=delivery.pk)
        response = admin_client.post(f"{DELIVERIES}/{delivery.pk}/redeliver")
        assert response.status_code == 202
        again = WebhookDelivery.objects.get(pk=response.json()["id"])
        assert again.event_id == delivery.event_id and again.payload == delivery.payload
        webhook_delivery_attempt(delivery_id=again.pk)
        assert [json.loads(r["body"])["id"] for r in ok_endpoint.received] == [str(delivery.event_id)] * 2
        assert AuditEvent.objects.filter(action="webhook_delivery.redeliver", actor_id=admin_user.id).exists()

    def test_only_admins(self, operator_client):
        assert operator_client.get(DELIVERIES).status_code == 403

    def test_old_records_are_purged(self, tenant):
        services.webhook_endpoint_set(by=Caller.system(tenant_id=tenant.id), url="https://hooks.example.com/x")
        old = enqueue(tenant)
        WebhookDelivery.objects.filter(pk=old.pk).update(
            status="delivered", created_at=timezone.now() - timedelta(days=31)
        )
        kept = enqueue(tenant)
        assert services.webhook_deliveries_purge() == 1
        assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [kept.pk]
