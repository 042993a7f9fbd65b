"""API keys' reads: the one path views, admins and services read keys, tokens and policies by."""

import weakref
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from django.db import connections, router
from django.db.models import Count, Q, QuerySet
from django.db.models.query import get_related_populators

from apikeys import keys
from apikeys.models import ApiKey, ApiKeyPolicy, ApiKeyQuerySet, EnrollmentToken
from audit.models import AuditEvent
from tenants.models import Tenant


def api_key_list(
    *,
    tenant_id: UUID | None,
    live_at: datetime | None = None,
    ids: Iterable[UUID] | None = None,
    created_before: datetime | None = None,
    unused_since: datetime | None = None,
) -> ApiKeyQuerySet:
    """The tenant's keys that are not revoked (expired ones too: people see that they expired).

    `live_at`: only those not expired then; `ids`, `created_before`, `unused_since`
    (last used, or never used and created, before it): only those that match.
    """
    queryset = ApiKey.objects.for_tenant(tenant_id).active()
    if live_at is not None:
        queryset = queryset.exclude(expires_at__isnull=False, expires_at__lte=live_at)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    if created_before is not None:
        queryset = queryset.filter(created_at__lt=created_before)
    if unused_since is not None:
        queryset = queryset.unused_since(unused_since)
    return queryset


def api_key_policy_get(*, tenant_id: UUID | None) -> ApiKeyPolicy:
    """The tenant's policy; an unsaved one with the defaults when it never set one."""
    return ApiKeyPolicy.objects.for_tenant(tenant_id).first() or ApiKeyPolicy(tenant_id=tenant_id)


def tenant_tier_get(*, tenant_id: UUID) -> str:
    """The tenant's tier (its rate-limit caps), without loading the tenant."""
    return Tenant.objects.filter(pk=tenant_id).values_list("tier", flat=True).get()


def api_key_self_rotations_since(*, api_key: ApiKey, since: datetime) -> list[datetime]:
    """When the key rotated itself after `since`, oldest first (the daily cap of self-rotation)."""
    return list(
        AuditEvent.objects.filter(
            tenant_id=api_key.tenant_id, action="api_key.self_rotate", target_id=str(api_key.pk), occurred_at__gt=since
        )
        .order_by("occurred_at")
        .values_list("occurred_at", flat=True)
    )


def enrollment_token_list(*, tenant_id: UUID | None) -> QuerySet[EnrollmentToken]:
    """The tenant's tokens that are not deleted, newest first, each with `live_keys` (keys it enrolled)."""
    return (
        EnrollmentToken.objects.for_tenant(tenant_id)
        .not_deleted()
        .annotate(live_keys=Count("enrolled_keys", filter=Q(enrolled_keys__revoked_at__isnull=True)))
    )


def enrollment_token_list_by_secret(*, secret: str) -> QuerySet[EnrollmentToken]:
    """Tokens whose display prefix is `secret`'s (almost always one; compare the digest to know)."""
    return EnrollmentToken.objects.filter(prefix=keys.display_prefix(secret))


CURRENT = "current"
PREVIOUS = "previous"


class _SecretLookup:
    """The key-by-prefix query of `api_key_find_by_secret`, compiled once per database connection.

    Django rebuilds and recompiles a queryset's SQL on every evaluation; for a
    query that runs on every API-key request that was most of authentication's
    CPU. This keeps the compiler's output (SQL, column layout, converters, the
    tenant's populator) and runs the same SQL with the prefix as its parameter,
    building the instances exactly as the queryset would (`Model.from_db`, the
    `select_related` populator, the field converters). One per connection
    object: a connection, its compiler and its converters belong to one thread.
    """

    __slots__ = ("compiler", "converters", "end", "init_list", "params", "populators", "sql", "start")

    PLACEHOLDER = "hlts_prefix!"  # a value no prefix has; replaced by the real one in each call

    def __init__(self, connection):
        queryset = _secret_lookup_queryset(self.PLACEHOLDER).using(connection.alias)
        compiler = queryset.query.get_compiler(connection=connection)
        self.sql, params = compiler.as_sql()
        # Which parameters are the prefix (both, today); any other stays as compiled.
        self.params = tuple(None if p == self.PLACEHOLDER else (p,) for p in params)
        if None not in self.params:
            raise AssertionError("the key lookup's SQL lost its prefix parameter")
        select, klass_info = compiler.select, compiler.klass_info
        self.start, self.end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        self.init_list = [column[0].target.attname for column in select[self.start : self.end]]
        self.populators = get_related_populators(klass_info, select, connection.alias)
        self.converters = compiler.get_converters([column[0] for column in select[: compiler.col_count]])
        self.compiler = compiler

    def run(self, connection, prefix: str) -> list[ApiKey]:
        params = [prefix if p is None else p[0] for p in self.params]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if self.converters:
            rows = self.compiler.apply_converters(rows, self.converters)
        found = []
        for row in rows:
            api_key = ApiKey.from_db(connection.alias, self.init_list, row[self.start : self.end])
            for populator in self.populators:
                populator.populate(row, api_key)
            found.append(api_key)
        return found


def _secret_lookup_queryset(prefix: str) -> ApiKeyQuerySet:
    # order_by(): the model's default ordering would only add a sort to the hot path.
    # The tenant comes in the same query: its tier caps the key's rate limits.
    return ApiKey.objects.filter(Q(prefix=prefix) | Q(previous_prefix=prefix)).select_related("tenant").order_by()


_secret_lookups: "weakref.WeakKeyDictionary[object, _SecretLookup]" = weakref.WeakKeyDictionary()


def _keys_with_prefix(prefix: str) -> list[ApiKey]:
    connection = connections[router.db_for_read(ApiKey)]
    lookup = _secret_lookups.get(connection)
    if lookup is None:
        lookup = _secret_lookups[connection] = _SecretLookup(connection)
    return lookup.run(connection, prefix)


def api_key_find_by_secret(*, secret: str) -> tuple[ApiKey, str] | None:
    """The key `secret` belongs to and which of its secrets it is (CURRENT or PREVIOUS); None if none.

    Revoked, expired and past-overlap matches are returned too: the caller says
    which. One query over two indexed columns (the current and the previous
    secret's display prefix, OR-ed: a bitmap OR of both indexes on PostgreSQL),
    with the tenant joined, compiled once per connection (`_SecretLookup`),
    then a constant-time digest comparison in Python, so neither the database
    nor a timing difference ever sees a secret or its digest matched byte by
    byte. Prefixes carry 41 random bits and are not unique, hence the loop
    (almost always over one row).
    """
    for api_key in _keys_with_prefix(keys.display_prefix(secret)):
        if keys.matches(secret, api_key.key_digest):
            return api_key, CURRENT
        if api_key.previous_key_digest and keys.matches(secret, api_key.previous_key_digest):
            return api_key, PREVIOUS
    return None
