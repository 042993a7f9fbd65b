"""Celery tasks: thin wrappers over apikeys' services."""

from celery import shared_task

from apikeys import observed
from apikeys.notices import api_key_notices_send


@shared_task(name="apikeys.notify", ignore_result=True)
def api_key_notices_send_task() -> None:
    api_key_notices_send()


@shared_task(name="apikeys.flush_observed_ips", ignore_result=True)
def flush_observed_ips() -> int:
    """Keys' observed addresses, from the Redis buffer into the database (every few minutes, by beat)."""
    return observed.flush_all_pending()
