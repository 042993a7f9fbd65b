"""Each webhook event the service sends has the shape its OpenAPI component says (apikeys.api.events)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.notices import api_key_notices_send
from core.caller import Caller
from haltless.testing import client_for_key
from webhooks.models import WebhookDelivery
from webhooks.services import EVENT_TYPES, webhook_endpoint_set

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/settings/api-keys"


@pytest.fixture
def schema(api_client) -> dict:
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def component(schema: dict, ref_or_schema: dict) -> dict:
    ref = ref_or_schema.get("$ref") or next(
        (part["$ref"] for part in ref_or_schema.get("allOf", []) if "$ref" in part), None
    )
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else ref_or_schema


def assert_conforms(schema: dict, body: dict, shape: dict) -> None:
    """`body` has exactly the properties of `shape`, all required ones, nulls only where nullable."""
    properties = shape["properties"]
    assert set(body) == set(properties), (sorted(body), sorted(properties))
    assert set(shape.get("required", [])) <= set(body)
    for name, value in body.items():
        described = component(schema, properties[name])
        if value is None:
            assert properties[name].get("nullable") or described.get("nullable"), f"{name} is null"
        elif "enum" in described:
            assert value in described["enum"], (name, value)
        elif described.get("type") == "object":
            assert_conforms(schema, value, described)


@pytest.fixture
def every_event(tenant, admin_client, make_api_key, api_client):
    """One delivery of each type, caused through the front door (and the notices job)."""
    webhook_endpoint_set(by=Caller.system(tenant_id=tenant.id), url="https://hooks.example.com/haltless")
    admin_client.put(
        "/api/v1/settings/api-key-policy",
        {"notify_unused_after_days": 1, "webhook_url": "https://hooks.example.com/haltless"},
        format="json",
    )
    rotated = make_api_key(name="rotated")
    client_for_key(rotated.secret).get("/api/v1/agent/whoami")
    assert admin_client.post(f"{KEYS}/{rotated.api_key.pk}/rotate", {}, format="json").status_code == 201

    fenced = make_api_key(name="fenced")
    admin_client.patch(f"{KEYS}/{fenced.api_key.pk}", {"allowed_cidrs": ["10.20.0.0/16"]}, format="json")
    assert client_for_key(fenced.secret).get("/api/v1/agent/whoami").status_code == 403

    leaked = make_api_key(name="leaked")
    answer = api_client.post("/api/v1/public/credentials/revoke", {"credentials": [leaked.secret]}, format="json")
    assert answer.status_code == 202

    expiring = make_api_key(name="expiring", expires_at=timezone.now() + timedelta(days=3))
    ApiKey.objects.filter(pk=expiring.api_key.pk).update(created_at=timezone.now() - timedelta(days=2))
    api_key_notices_send()
    return {delivery.type: delivery.payload for delivery in WebhookDelivery.objects.all()}


def test_every_type_is_documented_once_under_webhook_event(schema):
    event = schema["components"]["schemas"]["WebhookEvent"]
    assert set(event["discriminator"]["mapping"]) == set(EVENT_TYPES)
    callback = schema["paths"]["/api/v1/settings/api-key-policy"]["put"]["callbacks"]["apiKeyEvents"]
    body = callback["{$request.body#/webhook_url}"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/WebhookEvent"}


def test_each_sent_event_has_the_documented_shape(schema, every_event):
    assert set(every_event) == set(EVENT_TYPES)
    mapping = schema["components"]["schemas"]["WebhookEvent"]["discriminator"]["mapping"]
    for event_type, payload in every_event.items():
        assert_conforms(schema, payload, component(schema, {"$ref": mapping[event_type]}))
    assert every_event["api_key.exposed"]["data"]["action"] == "revoked"
    assert every_event["api_key.ip_denied"]["data"]["allowed_cidrs"] == ["10.20.0.0/16"]
    assert every_event["api_key.rotated"]["data"]["self_rotation"] is False
    assert every_event["api_key.expiring"]["data"]["days_before_expiry"] == 7
    assert every_event["api_key.unused"]["data"]["unused_for_days"] == 1
