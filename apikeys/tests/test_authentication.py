from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys import keys
from apikeys.models import ApiKey
from apikeys.tests.factories import ApiKeyFactory
from haltless.testing import client_for_user, key_header_client

PROBE = "/api/v1/_probe/machines"  # declares read:machines; makes no query of its own
INVALID = {"detail": "Invalid API key."}
pytestmark = [pytest.mark.django_db, pytest.mark.urls("apikeys.tests.urls")]


def _fabricated_key_with_prefix(prefix: str) -> str:
    """A well-formed key (right checksum) that shares a real key's display prefix."""
    random_part = prefix[len(keys.KEY_PREFIX) :] + "Z" * (keys.RANDOM_LENGTH - (len(prefix) - len(keys.KEY_PREFIX)))
    return keys.build_key(random_part)


class TestHeaders:
    def test_both_headers_authenticate(self, read_only_key, tenant, key_header):
        response = key_header_client(read_only_key.secret, key_header).get(PROBE)
        assert response.status_code == 200
        assert response.json() == {"tenant_id": str(tenant.id), "via": "api_key"}

    def test_bearer_is_case_insensitive(self, read_only_key, api_client):
        response = api_client.get(PROBE, HTTP_AUTHORIZATION=f"bearer {read_only_key.secret}")
        assert response.status_code == 200

    def test_surrounding_whitespace_in_x_api_key_is_ignored(self, read_only_key, api_client):
        response = api_client.get(PROBE, HTTP_X_API_KEY=f"  {read_only_key.secret} ")
        assert response.status_code == 200

    def test_x_api_key_wins_over_a_jwt_in_authorization(self, admin_user, api_client):
        client = client_for_user(admin_user)
        client.credentials(
            HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"], HTTP_X_API_KEY="hlts_not-a-key"
        )
        response = client.get(PROBE)
        assert response.status_code == 401
        assert response.json() == INVALID

    def test_jwts_still_authenticate_users(self, admin_client, tenant):
        response = admin_client.get(PROBE)
        assert response.status_code == 200
        assert response.json() == {"tenant_id": str(tenant.id), "via": "user"}

    def test_each_key_acts_for_its_own_tenant(self, read_only_key, other_tenant_key, tenant, other_tenant):
        assert key_header_client(read_only_key.secret, "bearer").get(PROBE).json()["tenant_id"] == str(tenant.id)
        theirs = key_header_client(other_tenant_key.secret, "bearer").get(PROBE)
        assert theirs.json()["tenant_id"] == str(other_tenant.id)


class TestRefusedKeys:
    def test_unknown_well_formed_key_is_401(self, read_only_key, key_header):
        response = key_header_client(keys.generate_key(), key_header).get(PROBE)
        assert response.status_code == 401
        assert response.json() == INVALID
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'

    def test_wrong_secret_for_a_known_prefix_is_the_same_401(self, read_only_key, key_header):
        impostor = _fabricated_key_with_prefix(read_only_key.api_key.prefix)
        assert keys.is_well_formed(impostor) and impostor[:12] == read_only_key.api_key.prefix
        response = key_header_client(impostor, key_header).get(PROBE)
        assert response.status_code == 401
        assert response.json() == INVALID

    @pytest.mark.parametrize(
        "mangle",
        [
            lambda key: key[:-1] + ("a" if key[-1] != "a" else "b"),  # checksum
            lambda key: key[:20] + ("a" if key[20] != "a" else "b") + key[21:],  # a typo in the random part
            lambda key: key[:-1],  # truncated
            lambda key: key + "0",  # too long
            lambda key: key[:10] + "!" + key[11:],  # outside base62
            lambda key: "hlts_",
        ],
    )
    def test_malformed_keys_are_refused_without_a_query(
        self, read_only_key, key_header, mangle, django_assert_num_queries
    ):
        client = key_header_client(mangle(read_only_key.secret), key_header)
        with django_assert_num_queries(0):
            response = client.get(PROBE)
        assert response.status_code == 401
        assert response.json() == INVALID

    def test_non_hlts_value_in_x_api_key_is_refused_without_a_query(self, api_client, django_assert_num_queries, db):
        with django_assert_num_queries(0):
            response = api_client.get(PROBE, HTTP_X_API_KEY="sk_live_1234")
        assert response.status_code == 401
        assert response.json() == INVALID

    def test_expired_key_is_401_saying_expired(self, tenant, key_header):
        expired = ApiKeyFactory(
            tenant=tenant, scopes=["read:machines"], expires_at=timezone.now() - timedelta(seconds=1)
        )
        response = key_header_client(expired.secret, key_header).get(PROBE)
        assert response.status_code == 401
        assert response.json() == {"detail": "API key has expired."}

    def test_key_expiring_later_still_works(self, make_api_key):
        issued = make_api_key(scopes="read_only", expires_at=timezone.now() + timedelta(minutes=5))
        assert key_header_client(issued.secret, "bearer").get(PROBE).status_code == 200

    def test_revoked_key_is_401_saying_revoked(self, tenant, key_header):
        revoked = ApiKeyFactory(tenant=tenant, scopes=["read:machines"], revoked_at=timezone.now())
        response = key_header_client(revoked.secret, key_header).get(PROBE)
        assert response.status_code == 401
        assert response.json() == {"detail": "API key has been revoked."}

    def test_revoked_and_expired_says_revoked(self, tenant):
        past = timezone.now() - timedelta(days=1)
        key = ApiKeyFactory(tenant=tenant, scopes=["read:machines"], revoked_at=past, expires_at=past)
        assert key_header_client(key.secret, "bearer").get(PROBE).json() == {"detail": "API key has been revoked."}

    def test_refused_keys_record_no_use(self, tenant):
        revoked = ApiKeyFactory(tenant=tenant, scopes=["read:machines"], revoked_at=timezone.now())
        key_header_client(revoked.secret, "bearer").get(PROBE)
        revoked.refresh_from_db()
        assert revoked.last_used_at is None


class TestQueryCost:
    def test_authentication_adds_one_query(self, read_only_key, django_assert_num_queries):
        client = key_header_client(read_only_key.secret, "bearer")
        client.get(PROBE)  # first use writes last_used_at
        with django_assert_num_queries(1):
            response = client.get(PROBE)
        assert response.status_code == 200

    def test_the_once_a_minute_write_is_one_more_query(self, read_only_key, django_assert_num_queries):
        client = key_header_client(read_only_key.secret, "x-api-key")
        with django_assert_num_queries(2) as captured:
            assert client.get(PROBE).status_code == 200
        assert captured.captured_queries[1]["sql"].startswith("UPDATE")


class TestLastUsed:
    def test_first_use_records_time_and_address(self, read_only_key, api_client):
        before = timezone.now()
        api_client.get(PROBE, HTTP_X_API_KEY=read_only_key.secret, REMOTE_ADDR="10.20.30.40")
        api_key = ApiKey.objects.get(pk=read_only_key.api_key.pk)
        assert api_key.last_used_at >= before
        assert api_key.last_used_ip == "10.20.30.40"

    def test_not_written_again_within_a_minute(self, read_only_key, api_client):
        recent = timezone.now() - timedelta(seconds=30)
        ApiKey.objects.filter(pk=read_only_key.api_key.pk).update(last_used_at=recent, last_used_ip="10.0.0.1")
        api_client.get(PROBE, HTTP_X_API_KEY=read_only_key.secret, REMOTE_ADDR="10.0.0.2")
        api_key = ApiKey.objects.get(pk=read_only_key.api_key.pk)
        assert api_key.last_used_at == recent
        assert api_key.last_used_ip == "10.0.0.1"

    def test_written_again_after_a_minute(self, read_only_key, api_client):
        stale = timezone.now() - timedelta(seconds=61)
        ApiKey.objects.filter(pk=read_only_key.api_key.pk).update(last_used_at=stale, last_used_ip="10.0.0.1")
        api_client.get(PROBE, HTTP_X_API_KEY=read_only_key.secret, REMOTE_ADDR="10.0.0.2")
        api_key = ApiKey.objects.get(pk=read_only_key.api_key.pk)
        assert api_key.last_used_at > stale + timedelta(seconds=60)
        assert api_key.last_used_ip == "10.0.0.2"

    def test_a_use_refused_for_scope_still_counts_as_authenticated_use(self, api_key):
        # Authentication succeeded; the permission refused. The key was presented and valid.
        key_header_client(api_key.secret, "bearer").get(PROBE)
        api_key.api_key.refresh_from_db()
        assert api_key.api_key.last_used_at is not None


class TestTheLookupCompiledOnce:
    """apikeys.selectors runs the key-by-prefix query from SQL compiled once per connection (issue 14)."""

    def test_the_key_is_built_as_the_orm_builds_it(self, tenant, django_assert_num_queries):
        from apikeys import selectors

        expires = timezone.now() + timedelta(days=3)
        key = ApiKeyFactory(
            tenant=tenant,
            scopes=["read:machines", "ingest"],
            allowed_cidrs=["10.0.0.0/8", "127.0.0.1/32"],
            machine_ids=["5d7c3a1e-0000-4000-8000-000000000001"],
            requests_per_minute=120,
            expires_at=expires,
            previous_prefix="hlts_prev123",
            previous_key_digest="0" * 64,
            previous_valid_until=expires,
        )
        for _ in range(2):  # the second call runs the compiled lookup again
            with django_assert_num_queries(1):
                found, which = selectors.api_key_find_by_secret(secret=key.secret)
                assert found.tenant.tier == tenant.tier  # joined: no query of its own
        assert which == selectors.CURRENT
        expected = ApiKey.objects.select_related("tenant").get(pk=key.pk)
        for field in ApiKey._meta.concrete_fields:
            assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
        assert found.tenant == expected.tenant and found.tenant.name == expected.tenant.name
        assert found._state.adding is False and found._state.db == expected._state.db
        found.name = "renamed"
        found.save(update_fields=["name"])
        assert ApiKey.objects.get(pk=key.pk).name == "renamed"

    def test_a_prefix_shared_by_two_keys_finds_the_right_one(self, tenant):
        from apikeys import selectors

        real = ApiKeyFactory(tenant=tenant)
        twin = _fabricated_key_with_prefix(real.prefix)
        other = ApiKeyFactory(tenant=tenant, secret=twin, key_digest=keys.digest(twin))
        assert selectors.api_key_find_by_secret(secret=real.secret)[0].pk == real.pk
        assert selectors.api_key_find_by_secret(secret=twin)[0].pk == other.pk
        assert selectors.api_key_find_by_secret(secret=keys.generate_key()) is None
