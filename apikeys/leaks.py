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
from apikeys.services import api_key_policy_of, api_key_revoke
from audit.services import PUBLIC_REPORT, audit_record

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


def _enqueue_exposed(api_key: ApiKey, *, secret: str, action: str) -> None:
    from webhooks.services import webhook_event_enqueue

    webhook_event_enqueue(
        tenant_id=api_key.tenant_id,
        type="api_key.exposed",
        data={
            "key_id": str(api_key.pk),
            "name": api_key.name,
            "prefix": api_key.prefix if secret == selectors.CURRENT else api_key.previous_prefix,
            "secret": secret,
            "action": action,
        },
    )


def _report_key_secret(api_key: ApiKey, which: str, client_ip: str | None) -> bool:
    """Act on one matched API-key secret; True if it was live."""
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
        policy = api_key_policy_of(tenant_id=api_key.tenant_id)
        if policy.leaked_key_action == ApiKeyPolicy.LeakedKeyAction.NOTIFY:
            if api_key.exposed_at is not None and now - api_key.exposed_at < EXPOSED_WEBHOOK_EVERY:
                return True  # already flagged today: nothing new to record
            action = "flagged"
        else:
            action = "revoked"
        changes = {"matched": which, "prefix": api_key.prefix, "action": action}
    first_today = api_key.exposed_at is None or now - api_key.exposed_at >= EXPOSED_WEBHOOK_EVERY
    ApiKey.objects.filter(pk=api_key.pk).update(exposed_at=now)
    audit_record(
        tenant_id=api_key.tenant_id,
        action="api_key.exposed",
        actor=PUBLIC_REPORT,
        target=api_key,
        changes=changes,
        client_ip=client_ip,
    )
    if action == "revoked":
        api_key_revoke(api_key=api_key, actor=PUBLIC_REPORT, client_ip=client_ip)  # the row is locked: it is live
    if first_today:
        _enqueue_exposed(api_key, secret=which, action=action)
    return True


def _report_enrollment_token(secret: str, client_ip: str | None) -> bool:
    now = timezone.now()
    for token in EnrollmentToken.objects.filter(prefix=keys.display_prefix(secret)):
        if not keys.matches(secret, token.token_digest):
            continue
        if not token.is_usable(now):
            return False
        if not EnrollmentToken.objects.filter(pk=token.pk, deleted_at__isnull=True).update(deleted_at=now):
            return False
        audit_record(
            tenant_id=token.tenant_id,
            action="enrollment_token.delete",
            actor=PUBLIC_REPORT,
            target=token,
            changes={"deleted_at": now, "reason": "exposed"},
            client_ip=client_ip,
        )
        return True
    return False


@transaction.atomic
def credential_report_one(*, credential: str, client_ip: str | None = None) -> Verdict:
    live = False
    if keys.is_well_formed(credential):
        found = selectors.api_key_find_by_secret(secret=credential)
        if found is not None:
            live = _report_key_secret(found[0], found[1], client_ip)
    elif keys.is_well_formed(credential, prefix=keys.ENROLLMENT_TOKEN_PREFIX):
        live = _report_enrollment_token(credential, client_ip)
    return Verdict(credential=credential, label=TRUE_POSITIVE if live else FALSE_POSITIVE)


def credentials_report_leaked(*, credentials: list[str], client_ip: str | None = None) -> list[Verdict]:
    """Act on every live credential among `credentials` (each in its own transaction); a verdict for each.

    Malformed strings cost no query, so a report of 1,000 random strings is cheap.
    """
    return [credential_report_one(credential=credential, client_ip=client_ip) for credential in credentials]
