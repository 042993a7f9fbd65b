"""Celery tasks: thin wrappers over telemetry's services."""

import logging
from uuid import UUID

from celery import shared_task

from telemetry import partitions, rollups, services

logger = logging.getLogger(__name__)


@shared_task(name="telemetry.rollups_build", ignore_result=True, expires=120)
def rollups_build() -> int:
    """The every-minute job that keeps the 1 h / 1 d rollups within minutes of ingest."""
    return rollups.rollups_build()


@shared_task(name="telemetry.partitions_ensure", ignore_result=True, expires=3000)
def partitions_ensure() -> int:
    """The hourly job that keeps readings partitions created `READINGS_PARTITIONS_AHEAD_DAYS` ahead."""
    return len(partitions.partitions_ensure())


@shared_task(name="telemetry.machine_purge", ignore_result=True, acks_late=True)
def machine_purge(machine_id: str) -> bool:
    """Delete a machine marked for deletion, with its sensors and readings (see services.machine_delete)."""
    return services.machine_purge(machine_id=UUID(machine_id))


@shared_task(name="telemetry.machines_purge_pending", ignore_result=True, expires=3000)
def machines_purge_pending() -> int:
    """The sweep: machines marked for deletion whose purge was lost (the broker down, a worker gone)."""
    return services.machines_purge_pending()


def machine_purge_enqueue(*, machine_id: UUID) -> None:
    """Send the purge to a worker (without a broker: run it here and now).

    A broker that does not answer loses nothing: the machine stays marked, and
    the sweep (`machines_purge_pending`) purges it.
    """
    from kombu.exceptions import OperationalError as BrokerError

    try:
        machine_purge.delay(str(machine_id))
    except (BrokerError, OSError) as exc:
        logger.warning("purge of machine %s not queued (%s); the sweep will do it", machine_id, type(exc).__name__)
