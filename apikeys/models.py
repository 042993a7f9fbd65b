import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.tenancy import TenantQuerySet, tenant_queryset


class ApiKeyQuerySet(TenantQuerySet):
    def active(self) -> "ApiKeyQuerySet":
        """Not revoked. Expired keys are still listed, so that people see they expired."""
        return self.filter(revoked_at__isnull=True)

    def with_status(self, status: str, now: datetime) -> "ApiKeyQuerySet":
        """`active`, `disabled` or `expired` (expired wins over disabled)."""
        expired = Q(expires_at__isnull=False, expires_at__lte=now)
        if status == "expired":
            return self.filter(expired)
        return self.exclude(expired).filter(disabled=(status == "disabled"))

    def unused_since(self, since: datetime) -> "ApiKeyQuerySet":
        """Keys last used before `since`, or never used and created before it."""
        return self.filter(Q(last_used_at__lt=since) | Q(last_used_at__isnull=True, created_at__lt=since))


class ApiKey(models.Model):
    """A tenant's credential for machines and integrations.

    Only a digest of the secret is stored (see apikeys.keys); the plaintext
    exists once, in the create response.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200)
    # Indexed: authentication finds the key by it, then compares digests in constant time.
    prefix = models.CharField(max_length=12, db_index=True, help_text="The first 12 characters, to recognise the key.")
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    # Restrictions (see apikeys.network, apikeys.ratelimit). Machine scope is stored by
    # machine id (a machine re-created under the same external id is not in scope);
    # null means every machine of the tenant.
    machine_ids = models.JSONField(null=True, blank=True, default=None)
    allowed_cidrs = models.JSONField(default=list, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    readings_per_minute = models.PositiveIntegerField(null=True, blank=True)
    # A disabled key is live (it can be enabled again) but authenticates nothing.
    disabled = models.BooleanField(default=False)
    exposed_at = models.DateTimeField(null=True, blank=True, help_text="When a leak report named the key.")
    # When the current secret was first used; None while it never was (the "lost answer" rule of rotation).
    secret_used_at = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    # The previous secret during a rotation's overlap. Its prefix is indexed too, so that
    # authentication finds the key by either secret in one query (prefix = p OR previous_prefix = p).
    previous_prefix = models.CharField(max_length=12, null=True, blank=True, db_index=True)
    previous_key_digest = models.CharField(max_length=64, null=True, blank=True, editable=False)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    previous_last_used_at = models.DateTimeField(null=True, blank=True)
    # Notices already sent (manage.py notify_api_keys): re-armed when expires_at changes or the key is used.
    expiry_notices_for = models.DateTimeField(null=True, blank=True, editable=False)
    expiry_notices_sent = models.JSONField(default=list, blank=True, editable=False)
    unused_notified_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set for keys an edge device minted itself at /agent/enroll (apikeys.enrollment).
    enrollment_token = models.ForeignKey(
        "EnrollmentToken", on_delete=models.PROTECT, null=True, blank=True, related_name="enrolled_keys"
    )
    enrolled_hostname = models.CharField(max_length=63, null=True, blank=True, help_text="Lower-cased.")

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["tenant", "revoked_at"], name="apikeys_tenant_revoked_idx")]
        constraints = [
            # Parallel enrollments of one device cannot both mint a key: the database refuses the second.
            models.UniqueConstraint(
                fields=["enrollment_token", "enrolled_hostname"],
                condition=models.Q(revoked_at__isnull=True),
                name="apikeys_one_unrevoked_key_per_enrolled_host",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def has_rate_limit(self) -> bool:
        return self.requests_per_minute is not None or self.readings_per_minute is not None

    def has_live_previous(self, now=None) -> bool:
        """Whether the previous secret of a rotation still works."""
        return (
            self.previous_key_digest is not None
            and self.previous_valid_until is not None
            and self.previous_valid_until > (now or timezone.now())
        )

    def status(self, now=None) -> str:
        """`active`, `disabled` or `expired` (expired wins); revoked keys are not listed."""
        if self.is_expired(now):
            return "expired"
        return "disabled" if self.disabled else "active"


class ObservedIp(models.Model):
    """Where a key was used from (allowed uses only), to help an admin write its allowlist.

    Written in batches from a buffer (Redis or in-process, see apikeys.observed),
    never once per request. `network` is an IPv4 address or an IPv6 /64.
    """

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="observed_ips")
    network = models.CharField(max_length=64)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    requests = models.PositiveBigIntegerField(default=0)

    objects = tenant_queryset("api_key__tenant").as_manager()

    class Meta:
        ordering = ["-last_seen"]
        verbose_name = "observed IP"
        constraints = [models.UniqueConstraint(fields=["api_key", "network"], name="apikeys_observed_ip_unique")]

    def __str__(self) -> str:
        return f"{self.network} ({self.requests})"


def default_notify_days_before_expiry() -> list[int]:
    return [7, 1]


class ApiKeyPolicy(models.Model):
    """A tenant's rules for its keys. Checked when a key is created or changed; never rewrites a key."""

    class LeakedKeyAction(models.TextChoices):
        REVOKE = "revoke"
        NOTIFY = "notify"

    tenant = models.OneToOneField(
        "tenants.Tenant", on_delete=models.CASCADE, primary_key=True, related_name="api_key_policy"
    )
    max_lifetime_days = models.PositiveIntegerField(null=True, blank=True)
    require_expiry = models.BooleanField(default=False)
    notify_days_before_expiry = models.JSONField(default=default_notify_days_before_expiry)
    notify_unused_after_days = models.PositiveIntegerField(null=True, blank=True)
    leaked_key_action = models.CharField(max_length=8, choices=LeakedKeyAction.choices, default="revoke")
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = "API key policy"
        verbose_name_plural = "API key policies"

    def __str__(self) -> str:
        return f"API key policy of {self.tenant_id}"


class EnrollmentTokenQuerySet(TenantQuerySet):
    def not_deleted(self) -> "EnrollmentTokenQuerySet":
        return self.filter(deleted_at__isnull=True)


class EnrollmentToken(models.Model):
    """A short-lived credential that lets edge devices mint their own API keys (`POST /agent/enroll`).

    `hlte_` + the layout of `hlts_` keys; only a digest is stored. Deleting one
    keeps the row (deleted_at), so the keys it enrolled still say where they came from.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="enrollment_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    machine_ids = models.JSONField(null=True, blank=True, default=None)
    max_uses = models.PositiveIntegerField(default=1)
    uses = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField()
    key_expires_in_days = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = EnrollmentTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "enrollment token"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(uses__lte=models.F("max_uses")), name="apikeys_enrollment_uses_cap"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now=None) -> bool:
        """Not deleted and not expired (whether uses are left depends on the enrollment, see apikeys.enrollment)."""
        return self.deleted_at is None and self.expires_at > (now or timezone.now())
