"""No request pattern is a server error: every method on every path (issue 12, item 4).

The paths are the access matrix's (the URL configuration walked), every method
Django or DRF could be asked, OPTIONS, HEAD and TRACE included, as several kinds
of caller, with no body, an empty object and the matrix's valid body. A path
parameter the matrix's world has no object for gets a random UUID (a 404).
"""

import json
import re
import uuid

import pytest

from core.tests.test_access_matrix import API_PREFIX, MATRIX_BY_KEY, World, api_operations
from haltless import urls as root_urls

SWEEP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
SWEEP_CALLERS = ("anonymous", "viewer", "admin", "key:all")
ALL_SCOPES = ["ingest", "agent", "read:machines", "read:sensors"]
# Outside /api/v1: the site's own paths (the Django admin is swept by its own tests).
SITE_PATHS = ("/", "/healthz", "/api/schema/", "/api/docs/")


@pytest.fixture
def world(tenant, other_tenant, admin_user, operator_user, viewer_user, other_tenant_admin, make_api_key) -> World:
    return World(tenant, other_tenant, admin_user, operator_user, viewer_user, other_tenant_admin, make_api_key)


def api_paths() -> list[str]:
    return sorted({path for _, path in api_operations()})


def site_paths() -> list[str]:
    declared = {
        "/" + str(p.pattern) for p in root_urls.urlpatterns if not str(p.pattern).startswith(("admin", "api/v1"))
    }
    return sorted(declared | set(SITE_PATHS))


def _url(world: World, path: str) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        attribute = {"pk": "machine", **World.PATH_OBJECTS}.get(name)
        return str(getattr(world, attribute).pk) if attribute else str(uuid.uuid4())

    return API_PREFIX + re.sub(r"{(\w+)}", value, path)


def _client(world: World, caller: str):
    if caller == "key:all":
        from haltless.testing import client_for_key

        return client_for_key(world._make_key(scopes=ALL_SCOPES, name="sweep").secret)
    return world.client_for(caller)


def _valid_parts(world: World, method: str, path: str) -> tuple[dict | None, dict | None]:
    entry = MATRIX_BY_KEY.get((method, path)) or MATRIX_BY_KEY.get(("GET", path))
    if entry is None:
        return None, None
    query = entry.query(world) if callable(entry.query) else entry.query
    body = None
    if entry.method == method:
        body = entry.body(world) if callable(entry.body) else entry.body
    return query, body


def assert_no_server_error(response, method: str, url: str) -> None:
    assert response.status_code < 500, f"{method} {url} -> {response.status_code}: {response.content[:300]!r}"


@pytest.mark.django_db
@pytest.mark.parametrize("caller", SWEEP_CALLERS)
@pytest.mark.parametrize("path", api_paths())
def test_every_method_on_every_api_path_answers_without_a_server_error(world, path, caller):
    _ = world.sensor  # telemetry paths find the tenant's machine and sensor
    client = _client(world, caller)
    for method in SWEEP_METHODS:
        url = _url(world, path)
        query, body = _valid_parts(world, method, path)
        bodies = [None, {}] if method in ("GET", "HEAD", "OPTIONS", "TRACE") else [None, {}, body]
        for payload in bodies:
            target = url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
            data = "" if payload is None else json.dumps(payload)
            response = client.generic(method, target, data=data, content_type="application/json")
            assert_no_server_error(response, method, target)
            if response.status_code >= 400 and method != "HEAD":
                assert response["Content-Type"].startswith("application/json"), (method, target)


@pytest.mark.django_db
@pytest.mark.parametrize("path", site_paths())
def test_every_method_on_every_site_path_answers_without_a_server_error(admin_client, path):
    for method in SWEEP_METHODS:
        response = admin_client.generic(method, path)
        assert_no_server_error(response, method, path)


class TestTheSweepCoversTheUrlConfiguration:
    def test_the_paths_include_the_known_500s(self):
        assert {"/settings/role-permissions", "/settings/dashboard-presets", "/sensor-data/aggregate"} <= set(
            api_paths()
        )
        assert len(api_paths()) >= 25


class TestKnownServerErrors:
    """The three 500s found by hand, pinned with their answers."""

    @pytest.mark.django_db
    @pytest.mark.parametrize("path", ["/settings/role-permissions", "/settings/dashboard-presets"])
    def test_options_describes_the_endpoint(self, admin_client, path):
        response = admin_client.options(API_PREFIX + path)
        assert response.status_code == 200
        body = response.json()
        assert body["renders"] == ["application/json"]
        assert body["parses"] == ["application/json"]

    @pytest.mark.django_db
    def test_aggregate_to_the_first_instant_of_the_calendar_is_a_400(self, admin_client, world):
        query = {"machine": world.machine.external_id, "sensor": world.sensor.key, "bucket": "1h"}
        response = admin_client.get(API_PREFIX + "/sensor-data/aggregate", {**query, "to": "0001-01-01T00:00:00Z"})
        assert response.status_code == 400
        assert response.json() == {"from": ["Must be earlier than `to` (default: now)."]}

    @pytest.mark.django_db
    def test_aggregate_to_within_the_first_day_starts_at_the_first_instant(self, admin_client, world):
        query = {"machine": world.machine.external_id, "sensor": world.sensor.key, "bucket": "1h"}
        response = admin_client.get(API_PREFIX + "/sensor-data/aggregate", {**query, "to": "0001-01-01T23:59:59Z"})
        assert response.status_code == 200
        assert response.json()["from"] == "0001-01-01T00:00:00Z"
        assert response.json()["buckets"] == []

    @pytest.mark.django_db
    @pytest.mark.parametrize("edge", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
    @pytest.mark.parametrize("path", ["/sensor-data/aggregate", "/sensor-data/readings"])
    def test_a_datetime_outside_the_calendar_in_utc_is_a_400(self, admin_client, world, path, edge):
        query = {"machine": world.machine.external_id, "sensor": world.sensor.key, "bucket": "1h"}
        for name in ("from", "to"):
            response = admin_client.get(API_PREFIX + path, {**query, name: edge})
            assert response.status_code == 400, response.content

    @pytest.mark.django_db
    def test_aggregate_from_the_first_day_of_the_calendar_is_answered(self, admin_client, world):
        query = {
            "machine": world.machine.external_id,
            "sensor": world.sensor.key,
            "bucket": "1d",
            "from": "0001-01-01T00:00:00Z",
            "to": "0001-01-02T00:00:00Z",
        }
        response = admin_client.get(API_PREFIX + "/sensor-data/aggregate", query)
        assert response.status_code == 200
        assert response.json()["buckets"] == []


@pytest.mark.django_db
class TestAnUnservedMethodIsA405WhoeverAsks:
    """Found by Schemathesis over HTTP: with an API key, TRACE on a user-only endpoint said "log in" (403)."""

    @pytest.mark.parametrize(
        ("method", "path"), [("TRACE", "/auth/token"), ("DELETE", "/settings/units"), ("PUT", "/me")]
    )
    @pytest.mark.parametrize("caller", ["anonymous", "key:all", "viewer"])
    def test_405_with_allow(self, world, caller, method, path):
        response = _client(world, caller).generic(method, API_PREFIX + path)
        assert response.status_code == 405
        assert response.json() == {"detail": f'Method "{method}" not allowed.'}
        assert "Allow" in response
