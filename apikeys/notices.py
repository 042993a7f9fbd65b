"""Expiry and unused-key notices (manage.py notify_api_keys and the daily beat job).

Each key and threshold is notified once: the thresholds already sent are
stored on the key with the `expires_at` they were sent for, so a new expiry
re-arms them; an unused notice is re-armed once the key is used again (its
last use is newer than the notice). Nothing is sent for a tenant without a
webhook URL, and nothing is marked sent there either.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apikeys import selectors
from apikeys.models import ApiKey
from apikeys.services import _jsonable, _key_event_data
from core.caller import Caller


@dataclass
class NoticeCounts:
    expiring: int = 0
    unused: int = 0
    tenants: list = field(default_factory=list)


def _key_data(api_key: ApiKey) -> dict:
    return {
        **_key_event_data(api_key),
        "expires_at": _jsonable(api_key.expires_at),
        "last_used_at": _jsonable(api_key.last_used_at),
    }


def _send_expiring(by: Caller, days: list[int], now: datetime) -> int:
    from webhooks.services import webhook_event_enqueue

    if not days:
        return 0
    sent = 0
    horizon = now + timedelta(days=max(days))
    live = selectors.api_key_list(tenant_id=by.tenant_id, live_at=now).filter(expires_at__isnull=False)
    for api_key in live.filter(expires_at__lte=horizon).select_for_update().order_by("expires_at"):
        already = set(api_key.expiry_notices_sent) if api_key.expiry_notices_for == api_key.expires_at else set()
        due = {d for d in days if api_key.expires_at - now <= timedelta(days=d)} - already
        if not due:
            continue
        webhook_event_enqueue(
            by=by,
            type="api_key.expiring",
            data={**_key_data(api_key), "days_before_expiry": min(due)},
        )
        # The nearer thresholds passed at the same time are covered by this one notice.
        api_key.expiry_notices_for = api_key.expires_at
        api_key.expiry_notices_sent = sorted(already | due, reverse=True)
        api_key.save(update_fields=["expiry_notices_for", "expiry_notices_sent"])
        sent += 1
    return sent


def _send_unused(by: Caller, after_days: int | None, now: datetime) -> int:
    from webhooks.services import webhook_event_enqueue

    if after_days is None:
        return 0
    sent = 0
    stale = selectors.api_key_list(tenant_id=by.tenant_id, live_at=now, unused_since=now - timedelta(days=after_days))
    # Not yet notified, or used again since the last notice.
    rearmed = Q(unused_notified_at__isnull=True) | Q(last_used_at__gt=F("unused_notified_at"))
    for api_key in stale.filter(rearmed).select_for_update().order_by("created_at"):
        webhook_event_enqueue(
            by=by,
            type="api_key.unused",
            data={**_key_data(api_key), "unused_for_days": after_days},
        )
        api_key.unused_notified_at = now
        api_key.save(update_fields=["unused_notified_at"])
        sent += 1
    return sent


def api_key_notices_send(*, tenant_id=None, now: datetime | None = None, on_tenant_done=None) -> NoticeCounts:
    """Send the due `api_key.expiring` and `api_key.unused` events of every tenant with a webhook URL.

    `on_tenant_done(tenant_id, expiring, unused)`, if given, is called after each tenant (progress).
    """
    from webhooks.selectors import webhook_endpoint_list

    now = now or timezone.now()
    counts = NoticeCounts()
    for endpoint_tenant_id in webhook_endpoint_list(tenant_id=tenant_id).values_list("tenant_id", flat=True):
        policy = selectors.api_key_policy_get(tenant_id=endpoint_tenant_id)
        by = Caller.system(tenant_id=endpoint_tenant_id)
        with transaction.atomic():
            expiring = _send_expiring(by, list(policy.notify_days_before_expiry), now)
            unused = _send_unused(by, policy.notify_unused_after_days, now)
        counts.expiring += expiring
        counts.unused += unused
        counts.tenants.append((endpoint_tenant_id, expiring, unused))
        if on_tenant_done is not None:
            on_tenant_done(endpoint_tenant_id, expiring, unused)
    return counts
