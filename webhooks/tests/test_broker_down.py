"""The outbox with the broker down: the causing request succeeds; the delivery waits for the sweep."""

import pytest
from django.db import transaction
from kombu.exceptions import OperationalError

from core.caller import Caller
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.tasks import webhook_delivery_attempt_task


@pytest.mark.django_db(transaction=True)
def test_an_event_enqueued_while_the_broker_is_down_stays_in_the_outbox(tenant, settings, monkeypatch, caplog):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    WebhookEndpoint.objects.create(tenant=tenant, url="https://hooks.example.com/haltless", secret_encrypted="x")

    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

    monkeypatch.setattr(webhook_delivery_attempt_task, "apply_async", refuse)
    with transaction.atomic():
        delivery = services.webhook_event_enqueue(
            by=Caller.system(tenant_id=tenant.pk), type="api_key.rotated", data={"id": "k"}
        )
    # Committed, and no exception reached the caller after the commit.
    stored = WebhookDelivery.objects.get(pk=delivery.pk)
    assert stored.next_attempt_at is not None  # due: the sweep picks it up
    assert "the sweep will send it" in caplog.text
