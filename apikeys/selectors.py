from uuid import UUID

from django.db.models import Q
from django.utils import timezone

from apikeys import keys
from apikeys.models import ApiKey, ApiKeyQuerySet


def api_key_list_active(*, tenant_id: UUID) -> ApiKeyQuerySet:
    return ApiKey.objects.active().filter(tenant_id=tenant_id)


CURRENT = "current"
PREVIOUS = "previous"


def api_key_find_by_secret(*, secret: str) -> tuple[ApiKey, str] | None:
    """The key `secret` belongs to and which of its secrets it is (CURRENT or PREVIOUS); None if none.

    Revoked, expired and past-overlap matches are returned too: the caller says
    which. One query over two indexed columns (the current and the previous
    secret's display prefix, OR-ed: a bitmap OR of both indexes on PostgreSQL),
    then a constant-time digest comparison in Python, so neither the database
    nor a timing difference ever sees a secret or its digest matched byte by
    byte. Prefixes carry 41 random bits and are not unique, hence the loop
    (almost always over one row).
    """
    prefix = keys.display_prefix(secret)
    # order_by(): the model's default ordering would only add a sort to the hot path.
    # The tenant comes in the same query: its tier caps the key's rate limits.
    matches = ApiKey.objects.filter(Q(prefix=prefix) | Q(previous_prefix=prefix)).select_related("tenant").order_by()
    for api_key in matches:
        if keys.matches(secret, api_key.key_digest):
            return api_key, CURRENT
        if api_key.previous_key_digest and keys.matches(secret, api_key.previous_key_digest):
            return api_key, PREVIOUS
    return None


def api_key_filter_status(queryset: ApiKeyQuerySet, status: str, now=None) -> ApiKeyQuerySet:
    """`active`, `disabled` or `expired` (expired wins over disabled)."""
    now = now or timezone.now()
    expired = Q(expires_at__isnull=False, expires_at__lte=now)
    if status == "expired":
        return queryset.filter(expired)
    queryset = queryset.exclude(expired)
    return queryset.filter(disabled=(status == "disabled"))


def api_key_filter_unused_since(queryset: ApiKeyQuerySet, since) -> ApiKeyQuerySet:
    """Keys last used before `since`, or never used and created before it."""
    return queryset.filter(Q(last_used_at__lt=since) | Q(last_used_at__isnull=True, created_at__lt=since))
