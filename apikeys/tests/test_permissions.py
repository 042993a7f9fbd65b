"""Scope enforcement by core.permissions.ApiAccess, through endpoints that declare scopes."""

import pytest
from prometheus_client import REGISTRY

from core.permissions import ADMIN_REQUIRED, API_KEY_REQUIRED, USER_LOGIN_REQUIRED
from haltless.testing import key_header_client

pytestmark = [pytest.mark.django_db, pytest.mark.urls("apikeys.tests.urls")]

SCOPED = {
    "/api/v1/_probe/machines": "read:machines",
    "/api/v1/_probe/sensors": "read:sensors",
    "/api/v1/_probe/ingest": "ingest",
    "/api/v1/_probe/agent": "agent",
}


def _missing(scope: str) -> dict:
    return {"detail": f"API key does not have the required scope: {scope}"}


class TestScopes:
    @pytest.mark.parametrize("path", ["/api/v1/_probe/ingest", "/api/v1/_probe/agent"])
    def test_edge_agent_key_reaches_its_scopes(self, api_key, key_header, path, tenant):
        response = key_header_client(api_key.secret, key_header).get(path)
        assert response.status_code == 200
        assert response.json() == {"tenant_id": str(tenant.id), "via": "api_key"}

    @pytest.mark.parametrize("path", ["/api/v1/_probe/machines", "/api/v1/_probe/sensors"])
    def test_edge_agent_key_is_403_outside_its_scopes(self, api_key, key_header, path):
        response = key_header_client(api_key.secret, key_header).get(path)
        assert response.status_code == 403
        assert response.json() == _missing(SCOPED[path])

    @pytest.mark.parametrize("path", ["/api/v1/_probe/ingest", "/api/v1/_probe/agent"])
    def test_read_only_key_is_403_on_agent_endpoints(self, read_only_key, key_header, path):
        response = key_header_client(read_only_key.secret, key_header).get(path)
        assert response.status_code == 403
        assert response.json() == _missing(SCOPED[path])

    @pytest.mark.parametrize(("path", "scope"), list(SCOPED.items()))
    def test_a_single_scope_opens_exactly_its_endpoint(self, make_api_key, path, scope):
        client = key_header_client(make_api_key(scopes=[scope]).secret, "bearer")
        for other_path, other_scope in SCOPED.items():
            response = client.get(other_path)
            if other_scope == scope:
                assert response.status_code == 200, other_path
            else:
                assert response.status_code == 403, other_path
                assert response.json() == _missing(other_scope)

    def test_other_tenants_key_with_the_scope_gets_in_as_its_own_tenant(self, other_tenant_key, other_tenant):
        response = key_header_client(other_tenant_key.secret, "bearer").get("/api/v1/_probe/sensors")
        assert response.status_code == 200
        assert response.json()["tenant_id"] == str(other_tenant.id)

    def test_a_scoped_key_skips_role_rules(self, read_only_key):
        # Roles are for people; a key's scopes are its whole permission.
        response = key_header_client(read_only_key.secret, "bearer").get("/api/v1/_probe/admin-sensors")
        assert response.status_code == 200


class TestWriteScopes:
    """An endpoint whose writes need a stronger scope than its reads (`required_write_scope`)."""

    def test_a_read_scope_reads_but_does_not_write(self, make_api_key, key_header, tenant):
        client = key_header_client(make_api_key(scopes=["read:machines"]).secret, key_header)
        assert client.get("/api/v1/_probe/machines-write").status_code == 200
        response = client.post("/api/v1/_probe/machines-write")
        assert response.status_code == 403
        assert response.json() == _missing("write:machines")

    def test_the_write_scope_writes(self, make_api_key, tenant):
        client = key_header_client(make_api_key(scopes=["read:machines", "write:machines"]).secret, "bearer")
        response = client.post("/api/v1/_probe/machines-write")
        assert response.status_code == 200
        assert response.json() == {"tenant_id": str(tenant.id), "via": "api_key"}

    def test_the_write_scope_alone_does_not_read(self, make_api_key):
        client = key_header_client(make_api_key(scopes=["write:machines"]).secret, "bearer")
        assert client.get("/api/v1/_probe/machines-write").json() == _missing("read:machines")
        assert client.post("/api/v1/_probe/machines-write").status_code == 200


class TestUserOnlyEndpoints:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("get", "/api/v1/_probe/user-only"),
            ("get", "/api/v1/settings/profile"),
            ("get", "/api/v1/settings/api-keys"),
            ("post", "/api/v1/settings/api-keys"),
        ],
    )
    def test_a_key_with_every_scope_is_told_to_log_in(self, make_api_key, key_header, method, path):
        everything = make_api_key(scopes=["edge_agent", "read_only"])
        response = getattr(key_header_client(everything.secret, key_header), method)(path)
        assert response.status_code == 403
        assert response.json() == {"detail": USER_LOGIN_REQUIRED}
        assert "user login" in response.json()["detail"]

    def test_users_reach_user_only_endpoints(self, viewer_client):
        assert viewer_client.get("/api/v1/_probe/user-only").status_code == 200


class TestUsersOnScopedEndpoints:
    @pytest.mark.parametrize("path", ["/api/v1/_probe/machines", "/api/v1/_probe/sensors"])
    def test_every_role_reads(self, admin_client, operator_client, viewer_client, path, tenant):
        for client in (admin_client, operator_client, viewer_client):
            response = client.get(path)
            assert response.status_code == 200
            assert response.json() == {"tenant_id": str(tenant.id), "via": "user"}

    @pytest.mark.parametrize("path", ["/api/v1/_probe/ingest", "/api/v1/_probe/agent"])
    def test_key_only_endpoints_refuse_every_role(self, admin_client, operator_client, viewer_client, path):
        for client in (admin_client, operator_client, viewer_client):
            response = client.get(path)
            assert response.status_code == 403
            assert response.json() == {"detail": API_KEY_REQUIRED}

    def test_role_rules_still_apply_to_users(self, viewer_client, admin_client):
        response = viewer_client.get("/api/v1/_probe/admin-sensors")
        assert response.status_code == 403
        assert response.json() == {"detail": ADMIN_REQUIRED}
        assert admin_client.get("/api/v1/_probe/admin-sensors").status_code == 200


class TestAnonymous:
    @pytest.mark.parametrize("path", [*SCOPED, "/api/v1/_probe/user-only"])
    def test_no_credentials_is_401(self, api_client, path, db):
        response = api_client.get(path)
        assert response.status_code == 401
        assert response.json() == {"detail": "Authentication credentials were not provided."}


class TestUnservedMethods:
    """Which methods an endpoint serves is public (the schema): 405 before any credential or role rule."""

    def test_a_key_is_told_the_method_is_not_served_not_to_log_in(self, make_api_key, key_header):
        everything = make_api_key(scopes=["edge_agent", "read_only"])
        response = key_header_client(everything.secret, key_header).put("/api/v1/_probe/user-only")
        assert response.status_code == 405
        assert response.json() == {"detail": 'Method "PUT" not allowed.'}

    def test_a_user_is_told_the_method_is_not_served_not_that_keys_only_may_call(self, admin_client):
        response = admin_client.delete("/api/v1/_probe/ingest")
        assert response.status_code == 405
        assert response.json() == {"detail": 'Method "DELETE" not allowed.'}

    def test_no_credentials_and_an_unserved_method_is_405(self, api_client, db):
        response = api_client.post("/api/v1/_probe/machines")
        assert response.status_code == 405
        assert response.json() == {"detail": 'Method "POST" not allowed.'}


class TestRefusalsAreCounted:
    """Each scope refusal of a key counts `haltless_api_key_auth_failures_total{reason="scope"}`."""

    @staticmethod
    def refused_for_scope() -> float:
        return REGISTRY.get_sample_value("haltless_api_key_auth_failures_total", {"reason": "scope"}) or 0.0

    @pytest.mark.parametrize("path", ["/api/v1/_probe/machines", "/api/v1/_probe/user-only"])
    def test_a_missing_scope_and_a_user_only_endpoint_count_as_scope(self, api_key, path):
        before = self.refused_for_scope()
        assert key_header_client(api_key.secret, "bearer").get(path).status_code == 403
        assert self.refused_for_scope() == before + 1

    def test_a_key_let_in_counts_nothing(self, api_key):
        before = self.refused_for_scope()
        assert key_header_client(api_key.secret, "bearer").get("/api/v1/_probe/agent").status_code == 200
        assert self.refused_for_scope() == before
