"""Who may call the settings endpoints at all: users only, never API keys; writes for admins."""

import pytest

from haltless.testing import client_for_key

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/api/v1/me"),
    ("get", "/api/v1/settings/role-permissions"),
    ("put", "/api/v1/settings/role-permissions"),
    ("get", "/api/v1/settings/ai"),
    ("patch", "/api/v1/settings/ai"),
    ("get", "/api/v1/settings/ai/models"),
    ("get", "/api/v1/settings/dashboard-presets"),
    ("put", "/api/v1/settings/dashboard-presets"),
    ("get", "/api/v1/settings/units"),
    ("patch", "/api/v1/settings/units"),
]
ADMIN_WRITES = [
    ("put", "/api/v1/settings/role-permissions"),
    ("patch", "/api/v1/settings/ai"),
    ("get", "/api/v1/settings/ai/models"),
    ("put", "/api/v1/settings/dashboard-presets"),
]


class TestCredentials:
    @pytest.mark.parametrize(("method", "url"), ENDPOINTS)
    def test_no_credentials_is_401(self, api_client, method, url):
        response = getattr(api_client, method)(url, {}, format="json")
        assert response.status_code == 401
        assert "detail" in response.json()

    @pytest.mark.parametrize(("method", "url"), ENDPOINTS)
    @pytest.mark.parametrize("scopes", ["edge_agent", "read_only"])
    def test_api_keys_are_refused_whatever_their_scopes(self, make_api_key, method, url, scopes):
        client = client_for_key(make_api_key(scopes=scopes).secret)
        response = getattr(client, method)(url, {}, format="json")
        assert response.status_code == 403
        assert response.json() == {"detail": "This endpoint requires a user login; API keys are not accepted here."}

    @pytest.mark.parametrize(("method", "url"), ENDPOINTS)
    def test_api_key_in_x_api_key_header_is_refused(self, read_only_key, api_client, method, url):
        response = getattr(api_client, method)(url, {}, format="json", HTTP_X_API_KEY=read_only_key.secret)
        assert response.status_code == 403


class TestRoles:
    @pytest.mark.parametrize(("method", "url"), ADMIN_WRITES)
    @pytest.mark.parametrize("client_fixture", ["operator_client", "viewer_client"])
    def test_admin_only(self, request, client_fixture, method, url):
        client = request.getfixturevalue(client_fixture)
        response = getattr(client, method)(url, {}, format="json")
        assert response.status_code == 403
        assert response.json() == {"detail": "Only a tenant admin may do this."}

    @pytest.mark.parametrize(
        "url",
        [
            "/api/v1/me",
            "/api/v1/settings/role-permissions",
            "/api/v1/settings/ai",
            "/api/v1/settings/dashboard-presets",
            "/api/v1/settings/units",
        ],
    )
    @pytest.mark.parametrize("client_fixture", ["admin_client", "operator_client", "viewer_client"])
    def test_any_role_reads(self, request, client_fixture, url):
        client = request.getfixturevalue(client_fixture)
        assert client.get(url).status_code == 200
        # The documented path with a trailing slash works too, without a redirect.
        assert client.get(url + "/").status_code == 200
