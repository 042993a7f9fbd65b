"""Retention's tunables, read from Django settings at call time (tests override them).

Each has a default here rather than in haltless/settings, so that the app is
complete on its own; set the same name in settings to change it.
"""

from datetime import timedelta

from django.conf import settings


def batch_size() -> int:
    """Rows per DELETE statement, each in its own short transaction."""
    return int(getattr(settings, "RETENTION_BATCH_SIZE", 10_000))


def running_stale_after() -> timedelta:
    """A running run that has recorded no batch for this long is presumed dead.

    A live run records progress after every batch (well under a second each),
    so this only has to exceed the longest plausible lock wait of one batch.
    """
    return getattr(settings, "RETENTION_RUNNING_STALE_AFTER", timedelta(minutes=10))


def queued_stale_after() -> timedelta:
    """A queued run no worker has picked up for this long is presumed lost (its message)."""
    return getattr(settings, "RETENTION_QUEUED_STALE_AFTER", timedelta(hours=6))


def queue() -> str | None:
    """The Celery queue of retention tasks; None is Celery's default queue."""
    return getattr(settings, "RETENTION_QUEUE", None)
