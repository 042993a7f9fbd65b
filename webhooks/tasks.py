"""Celery tasks: thin wrappers over webhooks.services."""

from uuid import UUID

from celery import shared_task
from django.utils import timezone

from webhooks import services


@shared_task(name="webhooks.delivery_attempt", ignore_result=True, acks_late=True)
def webhook_delivery_attempt_task(delivery_id: str) -> None:
    delivery = services.webhook_delivery_attempt(delivery_id=UUID(delivery_id))
    if delivery is not None and delivery.status == "pending" and delivery.next_attempt_at:
        countdown = max(0.0, (delivery.next_attempt_at - timezone.now()).total_seconds())
        webhook_delivery_attempt_task.apply_async(args=[delivery_id], countdown=countdown)


@shared_task(name="webhooks.send_due", ignore_result=True)
def webhook_deliveries_send_due_task() -> None:
    """The sweep (every minute): deliveries whose task was lost are still sent."""
    services.webhook_deliveries_send_due()
    services.webhook_deliveries_purge()
