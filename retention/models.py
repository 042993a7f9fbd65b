import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.tenancy import TenantQuerySet


class RetentionRun(models.Model):
    """One cleanup of one tenant's expired telemetry: requested, then executed by a worker.

    At most one run per tenant is queued or running at any time; the database
    guarantees it (a partial unique constraint), not the broker, so neither a
    double click, two web workers, nor a redelivered message can start a second.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        MANUAL = "manual"  # an admin, through the API
        SCHEDULE = "schedule"  # the daily beat task
        COMMAND = "command"  # manage.py run_retention
        MAINTENANCE = "maintenance"  # the partition maintenance job dropped partitions holding its rows

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="retention_runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Fixed when the run starts (not when it is requested) and kept if it is resumed.
    cutoff = models.DateTimeField(null=True, blank=True, help_text="Rows older than this are deleted.")
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    # The cutoff of each data class ({"readings", "heartbeats", "rollups"}: ISO datetimes),
    # from the tenant's effective retention policy; `cutoff` is the readings' one.
    cutoffs = models.JSONField(default=dict, blank=True)
    readings_deleted = models.BigIntegerField(default=0)
    heartbeats_deleted = models.BigIntegerField(default=0)
    rollups_deleted = models.BigIntegerField(default=0)
    # Whole partitions of readings dropped (only by the maintenance job) that held rows of this tenant.
    partitions_dropped = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Bumped with every committed batch: how a dead worker's run is told from a slow one.
    updated_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker started it.")
    error = models.TextField(blank=True)
    # Whoever holds the current token may commit batches; a takeover replaces it,
    # so a presumed-dead worker that wakes up cannot commit another batch.
    execution_token = models.UUIDField(null=True, blank=True, editable=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(status__in=["queued", "running"]),
                name="retention_run_one_active_per_tenant",
            )
        ]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="retention_run_tenant_time_idx")]

    def __str__(self) -> str:
        return f"retention run {self.id} ({self.status})"

    @property
    def rows_deleted(self) -> int:
        return self.readings_deleted + self.heartbeats_deleted


class RetentionPolicy(models.Model):
    """A tenant's own retention windows, each at most its tier's; null follows the tier."""

    tenant = models.OneToOneField(
        "tenants.Tenant", on_delete=models.CASCADE, primary_key=True, related_name="retention_policy"
    )
    readings_days = models.PositiveIntegerField(null=True, blank=True)
    heartbeats_days = models.PositiveIntegerField(null=True, blank=True)
    rollups_days = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "retention policies"

    def __str__(self) -> str:
        return f"retention policy of {self.tenant_id}"


class RetentionHold(models.Model):
    """A legal hold: raw readings of some machines (or all) in [starts_at, ends_at) are never deleted.

    Released holds are kept (with `released_at`) as the record of what was held and why.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="retention_holds")
    reason = models.TextField()
    # Empty with all_machines: every machine of the tenant, present and future.
    all_machines = models.BooleanField(default=True)
    machines = models.ManyToManyField("telemetry.Machine", blank=True, related_name="retention_holds")
    starts_at = models.DateTimeField(help_text="Inclusive.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Exclusive; empty: open-ended.")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["tenant", "released_at"], name="retention_hold_active_idx")]

    def __str__(self) -> str:
        return f"hold {self.id} ({'released' if self.released_at else 'active'})"
