"""Celery tasks: thin wrappers that call retention.services with ids."""

import logging
from uuid import UUID

from celery import shared_task
from django.conf import settings
from django.db import transaction

from core import errors
from core.caller import Caller
from retention import conf, services
from retention.models import RetentionRun
from tenants.models import Tenant

logger = logging.getLogger(__name__)

# Under the Redis transport's default visibility timeout (1 h), so a long run is
# never handed to a second worker while the first is still alive.
EXECUTE_SOFT_TIME_LIMIT = 50 * 60
EXECUTE_TIME_LIMIT = 55 * 60
NOT_YET_COMMITTED_RETRIES = 3
BROKER_UNAVAILABLE = "Background jobs cannot be queued right now; nothing was started. Try again shortly."
BROKER_RETRY_AFTER_SECONDS = 30


@shared_task(
    name="retention.run_execute",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=EXECUTE_SOFT_TIME_LIMIT,
    time_limit=EXECUTE_TIME_LIMIT,
    max_retries=5,
    ignore_result=True,
    bind=True,
)
def retention_run_execute(self, run_id: str) -> None:
    if self.request.retries < NOT_YET_COMMITTED_RETRIES and not RetentionRun.objects.filter(pk=run_id).exists():
        # Published from inside the requesting transaction (retention_run_dispatch): it
        # may not have committed yet. Look again in a moment.
        raise self.retry(countdown=1)
    try:
        services.retention_run_execute(run_id=UUID(run_id))
    except services.RetentionRunBusy as exc:
        # A redelivered message while the run still makes progress elsewhere:
        # look again once a dead worker would have been noticed.
        raise self.retry(exc=exc, countdown=conf.running_stale_after().total_seconds()) from None


def retention_run_enqueue(*, run_id: UUID) -> None:
    """Send the run to a worker once the transaction that created it commits.

    Without a broker (CELERY_TASK_ALWAYS_EAGER) it runs here and now, so outside
    a transaction the run is finished when this returns.
    """
    options = {"queue": conf.queue()} if conf.queue() else {}
    transaction.on_commit(lambda: retention_run_execute.apply_async(args=[str(run_id)], **options))


def retention_run_dispatch(*, run_id: UUID) -> None:
    """Send the run to a worker now, from inside the transaction that creates it.

    If the broker cannot take it, raises errors.Unavailable (503, Retry-After), and
    the caller's transaction rolls back: no queued run is left behind to block the
    tenant's next request, and no audit event claims one was requested. The task
    tolerates arriving before that transaction commits (it looks again).
    Without a broker (CELERY_TASK_ALWAYS_EAGER) it runs once the transaction commits.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        retention_run_enqueue(run_id=run_id)
        return
    from kombu.exceptions import OperationalError as BrokerError

    options = {"queue": conf.queue()} if conf.queue() else {}
    try:
        retention_run_execute.apply_async(args=[str(run_id)], **options)
    except (BrokerError, OSError) as exc:
        logger.warning("retention run %s not queued: the broker does not answer (%s)", run_id, type(exc).__name__)
        raise errors.Unavailable(BROKER_UNAVAILABLE, retry_after=BROKER_RETRY_AFTER_SECONDS) from None


@shared_task(name="retention.schedule_all", ignore_result=True)
def retention_schedule_all() -> int:
    """The daily job: first the partition maintenance (whole expired partitions dropped,
    PostgreSQL only), then one run, and one task, per tenant. Returns how many were queued."""
    from retention.partitions import partition_drop_expired

    partition_drop_expired()
    queued = 0
    for tenant in list(Tenant.objects.order_by("pk")):
        run, created = services.retention_run_request(
            by=Caller.system(tenant_id=tenant.pk), trigger=RetentionRun.Trigger.SCHEDULE
        )
        if created:
            retention_run_enqueue(run_id=run.id)
            queued += 1
        else:
            logger.info("retention for tenant %s skipped: run %s is %s", tenant.pk, run.pk, run.status)
    return queued
