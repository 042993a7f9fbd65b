"""The fault suite's own stack (core/tests/test_faults.py): the test settings, with
retention and the broker tuned so that a killed worker's run comes back in seconds."""

from datetime import timedelta

from .test import *  # noqa: F403
from .test import CELERY_BROKER_TRANSPORT_OPTIONS

# Many small batches, so a run lasts long enough to be killed in the middle.
RETENTION_BATCH_SIZE = 50
RETENTION_RUNNING_STALE_AFTER = timedelta(seconds=3)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "visibility_timeout": 5,
    "unacked_restore_interval": 1,
}
