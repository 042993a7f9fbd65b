from uuid import UUID

from apikeys import keys
from apikeys.models import ApiKey, ApiKeyQuerySet


def api_key_list_active(*, tenant_id: UUID) -> ApiKeyQuerySet:
    return ApiKey.objects.active().filter(tenant_id=tenant_id)


def api_key_find_by_secret(*, secret: str) -> ApiKey | None:
    """The key whose plaintext is `secret`, revoked or expired included; None if none.

    One indexed query by display prefix, then a constant-time digest comparison
    in Python, so neither the database nor a timing difference ever sees the
    secret or its digest being matched byte by byte. Prefixes carry 41 random
    bits and are not unique, hence the loop (almost always over one row).
    """
    # order_by(): the model's default ordering would only add a sort to the hot path.
    # The tenant comes in the same query: its tier caps the key's rate limits.
    for api_key in ApiKey.objects.filter(prefix=keys.display_prefix(secret)).select_related("tenant").order_by():
        if keys.matches(secret, api_key.key_digest):
            return api_key
    return None
