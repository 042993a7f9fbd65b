"""Answering a leak: credentials someone found in public end here (services).

`credentials_report_leaked` takes what a finder (`POST /public/credentials/revoke`)
or GitHub's secret scanning (`POST /public/secret-scanning/github`) sends and,
for each live credential among them:
- an API key's current secret: revoked, or only flagged (`exposed_at`) when the
  tenant's policy says `leaked_key_action: "notify"`;
- an API key's previous secret, within its overlap: that secret ends at once,
  the key (and its current secret) stays;
- an enrollment token: deleted (it can only mint keys, so there is nothing to keep).
Each is audited with actor `public_report`, and an `api_key.exposed` webhook goes
out at most once per key per day. Reporting a dead credential again changes
nothing: one revocation, one audit event.
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apikeys import keys, selectors
from apikeys.models import ApiKey, ApiKeyPolicy, EnrollmentToken
from apikeys.services import _key_event_data, api_key_revoke
from audit.services import PUBLIC_REPORT, audit_record
from core.caller import Caller

MAX_CREDENTIALS = 1000
EXPOSED_WEBHOOK_EVERY = timedelta(days=1)

TRUE_POSITIVE = "true_positive"
FALSE_POSITIVE = "false_positive"


@dataclass(frozen=True)
class Verdict:
    credential: str
    label: str  # TRUE_POSITIVE when it was a live credential of ours

    @property
    def token_hash(self) -> str:
        return hashlib.sha256(self.credential.encode("utf-8", "surrogatepass")).hexdigest()


def _reporter(by: Caller, tenant_id) -> Caller:
    """The public report acting on the tenant of what it found, from the finder's address."""
    return Caller.acting(PUBLIC_REPORT, client_ip=by.client_ip, tenant_id=tenant_id)


def _enqueue_exposed(by: Caller, api_key: ApiKey, *, secret: str, action: str) -> None:
    from webhooks.services import webhook_event_enqueue

    webhook_event_enqueue(
        by=by,
        type="api_key.exposed",
        data={
            **_key_event_data(api_key),
            # The secret reported: its own prefix (an override keeps the key's place in the payload).
            "prefix": api_key.prefix if secret == selectors.CURRENT else api_key.previous_prefix,
            "secret": secret,
            "action": action,
        },
    )


def _report_key_secret(api_key: ApiKey, which: str, by: Caller) -> bool:
    """Act on one matched API-key secret; True if it was live."""
    by = _reporter(by, api_key.tenant_id)
    now = timezone.now()
    locked = ApiKey.objects.select_for_update().filter(pk=api_key.pk).first()
    if locked is None or locked.is_revoked:
        return False
    api_key = locked
    if which == selectors.PREVIOUS:
        if not api_key.has_live_previous(now):
            return False
        action = "previous_secret_ended"
        previous_prefix = api_key.previous_prefix
        ApiKey.objects.filter(pk=api_key.pk).update(previous_valid_until=now)
        changes = {"matched": which, "previous_prefix": previous_prefix, "previous_valid_until": now}
    else:
        if api_key.is_expired(now):
            return False
        policy = selectors.api_key_policy_get(tenant_id=api_key.tenant_id)
        if policy.leaked_key_action == ApiKeyPolicy.LeakedKeyAction.NOTIFY:
            if api_key.exposed_at is not None and now - api_key.exposed_at < EXPOSED_WEBHOOK_EVERY:
                return True  # already flagged today: nothing new to record
            action = "flagged"
        else:
            action = "revoked"
        changes = {"matched": which, "prefix": api_key.prefix, "action": action}
    first_today = api_key.exposed_at is None or now - api_key.exposed_at >= EXPOSED_WEBHOOK_EVERY
    ApiKey.objects.filter(pk=api_key.pk).update(exposed_at=now)
    audit_record(by=by, action="api_key.exposed", target=api_key, changes=changes)
    if action == "revoked":
        api_key_revoke(by=by, api_key=api_key)  # the row is locked: it is live
    if first_today:
        _enqueue_exposed(by, api_key, secret=which, action=action)
    return True


def _report_enrollment_token(secret: str, by: Caller) -> bool:
    now = timezone.now()
    for token in selectors.enrollment_token_list_by_secret(secret=secret):
        if not keys.matches(secret, token.token_digest):
            continue
        if not token.is_usable(now):
            return False
        if not EnrollmentToken.objects.filter(pk=token.pk, deleted_at__isnull=True).update(deleted_at=now):
            return False
        audit_record(
            by=_reporter(by, token.tenant_id),
            action="enrollment_token.delete",
            target=token,
            changes={"deleted_at": now, "reason": "exposed"},
        )
        return True
    return False


@transaction.atomic
def credential_report_one(*, by: Caller, credential: str) -> Verdict:
    """Act on one credential `by` whoever reported it (anonymous: only its address counts)."""
    live = False
    if keys.is_well_formed(credential):
        found = selectors.api_key_find_by_secret(secret=credential)
        if found is not None:
            live = _report_key_secret(found[0], found[1], by)
    elif keys.is_well_formed(credential, prefix=keys.ENROLLMENT_TOKEN_PREFIX):
        live = _report_enrollment_token(credential, by)
    return Verdict(credential=credential, label=TRUE_POSITIVE if live else FALSE_POSITIVE)


def credentials_report_leaked(*, by: Caller, credentials: list[str]) -> list[Verdict]:
    """Act on every live credential among `credentials` (each in its own transaction); a verdict for each.

    Malformed strings cost no query, so a report of 1,000 random strings is cheap.
    """
    return [credential_report_one(by=by, credential=credential) for credential in credentials]
