"""Celery tasks: thin wrappers over telemetry's services."""

from celery import shared_task

from telemetry import partitions, rollups


@shared_task(name="telemetry.rollups_build", ignore_result=True, expires=120)
def rollups_build() -> int:
    """The every-minute job that keeps the 1 h / 1 d rollups within minutes of ingest."""
    return rollups.rollups_build()


@shared_task(name="telemetry.partitions_ensure", ignore_result=True, expires=3000)
def partitions_ensure() -> int:
    """The hourly job that keeps readings partitions created `READINGS_PARTITIONS_AHEAD_DAYS` ahead."""
    return len(partitions.partitions_ensure())
