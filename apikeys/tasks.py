"""Celery tasks: thin wrappers over apikeys' services."""

from celery import shared_task

from apikeys.notices import api_key_notices_send


@shared_task(name="apikeys.notify", ignore_result=True)
def api_key_notices_send_task() -> None:
    api_key_notices_send()
