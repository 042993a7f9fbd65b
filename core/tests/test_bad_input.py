"""Hostile input on every endpoint: a 4xx in the API's error shape, never a 500.

The endpoints are the access matrix's rows (which `test_access_matrix` proves
are all of them); each request is made by a caller the matrix lets in, with
the row's own valid body as the starting point, so that the input really
reaches parsing, validation and the database rather than stopping at the door.
"""

import json
import re
from functools import cache

import pytest
from django.conf import settings
from drf_spectacular.generators import SchemaGenerator

from core.tests.test_access_matrix import CALLERS, MATRIX, Row, World

pytestmark = pytest.mark.django_db

BODY_METHODS = {"POST", "PUT", "PATCH"}
NOT_FOUND = {"detail": "Not found."}
# Valid ISO 8601 that databases cannot hold: PostgreSQL's offsets stop at ±15:59, and an
# offset can carry year 1 or 9999 out of range once converted to UTC.
EXTREME_DATETIMES = ["2026-01-01T00:00:00-23:59", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.fixture
def world(tenant, other_tenant, admin_user, operator_user, viewer_user, other_tenant_admin, make_api_key) -> World:
    world = World(tenant, other_tenant, admin_user, operator_user, viewer_user, other_tenant_admin, make_api_key)
    _ = world.sensor
    return world


# Endpoints for people and scanners outside the service, whose contract fixes their answers
# (202, 400, 413, 429): a body is read as JSON whatever its Content-Type, never a 415.
READ_AS_JSON_WHATEVER_THE_TYPE = {("POST", "/public/credentials/revoke"), ("POST", "/public/secret-scanning/github")}


def allowed_caller(entry: Row) -> str:
    """A caller the matrix lets through, preferring the admin (who reaches the most code)."""
    order = ["admin", *[c for c in CALLERS if c != "admin"]]
    return next(c for c in order if 200 <= entry.status_for(c) < 300)


def client(world: World, entry: Row):
    if entry.refusal is not None:  # a credential of its own, which no caller of the matrix holds
        api_client = world.own_credential_client(entry)
    else:
        api_client = world.client_for(allowed_caller(entry))
    api_client.raise_request_exception = False  # a 500 must show as a 500, not as a test error
    return api_client


def valid_body(world: World, entry: Row):
    return entry.body(world) if callable(entry.body) else entry.body


def valid_query(world: World, entry: Row) -> dict:
    return dict((entry.query(world) if callable(entry.query) else entry.query) or {})


def request(api_client, entry: Row, url: str, *, data=b"", content_type="application/json", query=None, **extra):
    if query is not None:
        extra["QUERY_STRING"] = query
    return api_client.generic(entry.method, url, data=data, content_type=content_type, **extra)


def assert_client_error(response, *statuses: int) -> None:
    """A 4xx (one of `statuses` if given) with a JSON object body."""
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if statuses:
        assert response.status_code in statuses, (response.status_code, response.content[:300])
    else:
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert isinstance(response.json(), dict), response.content[:300]


def assert_no_server_error(response) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code != 204:
        assert response["Content-Type"].startswith("application/json"), response["Content-Type"]


def _shape(path: str) -> str:
    return re.sub(r"{\w+}", "{}", path)


@cache
def query_parameters() -> dict[tuple[str, str], list[str]]:
    """Each operation's documented query parameters, from the OpenAPI schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = {}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
            found[(method.upper(), _shape(path.removeprefix("/api/v1")))] = names
    return found


def rows(*, methods=None, with_path_params=False, with_body_fields=False):
    selected = [
        r
        for r in MATRIX
        if (methods is None or r.method in methods)
        and (not with_path_params or "{" in r.path)
        and (not with_body_fields or (isinstance(r.body, dict) and r.body) or callable(r.body))
    ]
    return pytest.mark.parametrize("entry", selected, ids=lambda r: f"{r.method} {r.path}")


def nested(depth: int, leaf="x") -> object:
    value: object = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


class TestOversizedBodies:
    @rows()
    def test_body_over_the_upload_limit_is_413_unread(self, world, entry):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = json.dumps({"padding": "x" * limit}).encode()
        response = request(client(world, entry), entry, world.url(entry), data=body)
        assert response.status_code == 413
        assert response.json() == {"detail": f"The request body is larger than {limit} bytes."}

    @rows(methods=BODY_METHODS, with_body_fields=True)
    def test_a_huge_field_value_is_refused(self, world, entry):
        body = valid_body(world, entry)
        huge = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 2)
        for field in body:
            response = request(client(world, entry), entry, world.url(entry), data=json.dumps({**body, field: huge}))
            assert_client_error(response)


class TestDeeplyNestedJson:
    @rows(methods=BODY_METHODS)
    @pytest.mark.parametrize("depth", [100_000])
    def test_nesting_past_the_decoder_is_400(self, world, entry, depth):
        response = request(client(world, entry), entry, world.url(entry), data="[" * depth + "]" * depth)
        assert response.status_code == 400
        assert response.json()["detail"].startswith("JSON parse error - ")  # ingest has its own parser

    @rows(methods=BODY_METHODS)
    @pytest.mark.parametrize("depth", [50, 900])
    def test_nesting_in_every_field_is_a_client_error(self, world, entry, depth):
        body = valid_body(world, entry)
        if isinstance(body, list):  # a list of objects (GitHub's alerts): nest inside the first
            body = body[0]
        fields = list(body) if isinstance(body, dict) and body else ["anything"]
        for field in fields:
            data = json.dumps({**(body or {}), field: nested(depth)})
            assert_client_error(request(client(world, entry), entry, world.url(entry), data=data))
        assert_client_error(request(client(world, entry), entry, world.url(entry), data=json.dumps(nested(depth))))


class TestWrongContentTypes:
    CONTENT_TYPES = [
        ("text/plain", "name=x"),
        ("application/x-www-form-urlencoded", "name=x"),
        (
            "multipart/form-data; boundary=xyz",
            '--xyz\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--xyz--',
        ),
        ("application/xml", "<name>x</name>"),
    ]

    @rows(methods=BODY_METHODS)
    @pytest.mark.parametrize(("content_type", "data"), CONTENT_TYPES, ids=[c for c, _ in CONTENT_TYPES])
    def test_not_json_is_415(self, world, entry, content_type, data):
        response = request(client(world, entry), entry, world.url(entry), data=data, content_type=content_type)
        if entry.body is None:
            # Takes no body, so never reads it: the content type cannot matter.
            assert_no_server_error(response)
        elif entry.key in READ_AS_JSON_WHATEVER_THE_TYPE:
            assert_client_error(response, 400)
        else:
            assert response.status_code == 415
            assert response.json() == {"detail": f'Unsupported media type "{content_type}" in request.'}


class TestInvalidIdsInPaths:
    BAD_IDS = ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g", "%27%20OR%201%3D1--", "a" * 5000, "%FF%FE"]

    @rows(with_path_params=True)
    @pytest.mark.parametrize("bad_id", BAD_IDS, ids=["word", "number", "almost-uuid", "sql", "long", "non-utf8"])
    def test_malformed_id_is_404(self, world, entry, bad_id):
        url = "/api/v1" + re.sub(r"{\w+}", bad_id, entry.path)
        response = request(client(world, entry), entry, url, data=json.dumps(valid_body(world, entry) or {}))
        assert response.status_code == 404
        assert response.json() == NOT_FOUND

    @rows(with_path_params=True)
    def test_unknown_well_formed_id_is_404(self, world, entry):
        url = "/api/v1" + re.sub(r"{\w+}", "3f2504e0-4f89-41d3-9a0c-0305e82c3301", entry.path)
        response = request(client(world, entry), entry, url, data=json.dumps(valid_body(world, entry) or {}))
        assert response.status_code == 404
        assert isinstance(response.json()["detail"], str)


class TestHugeQueryParameters:
    @rows()
    def test_huge_values_for_every_documented_parameter(self, world, entry):
        names = [*query_parameters().get((entry.method, _shape(entry.path)), []), "unknown"]
        base = valid_query(world, entry)
        for name in names:
            for value in ["x" * 100_000, "9" * 5000, "-1", "%00", *EXTREME_DATETIMES]:
                query = "&".join(f"{k}={v}" for k, v in {**base, name: value}.items())
                body = json.dumps(valid_body(world, entry)) if entry.method in BODY_METHODS else b""
                response = request(client(world, entry), entry, world.url(entry), data=body, query=query)
                assert_no_server_error(response)

    @rows()
    def test_too_many_parameters_is_400_json(self, world, entry):
        query = "&".join(f"p{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
        response = request(client(world, entry), entry, world.url(entry), query=query)
        assert response.status_code == 400
        assert response.json() == {"detail": "Bad request."}


class TestNonUtf8:
    @rows(methods=BODY_METHODS)
    def test_non_utf8_body_is_400(self, world, entry):
        response = request(client(world, entry), entry, world.url(entry), data=b'{"name": "\xff\xfe\xfd"}')
        assert response.status_code == 400
        assert "JSON parse error" in response.json()["detail"]

    @rows(methods=BODY_METHODS, with_body_fields=True)
    @pytest.mark.parametrize("bad_text", ["\ud800", "nul\u0000byte", "\xff\xfe"], ids=["surrogate", "nul", "latin1"])
    def test_unstorable_text_in_every_field_is_refused(self, world, entry, bad_text):
        # A lone surrogate or a NUL cannot be stored in PostgreSQL text: refused, never a 500.
        body = valid_body(world, entry)
        for field in body:
            for value in [bad_text, [bad_text], {bad_text: bad_text}]:
                data = json.dumps({**body, field: value})
                assert_no_server_error(request(client(world, entry), entry, world.url(entry), data=data))

    @rows(methods=BODY_METHODS, with_body_fields=True)
    def test_extreme_datetimes_in_every_field_are_refused_or_stored(self, world, entry):
        body = valid_body(world, entry)
        for field in body:
            for value in EXTREME_DATETIMES:
                nested_value = body[field]
                if isinstance(nested_value, list) and nested_value and isinstance(nested_value[0], dict):
                    # A list of objects (ingest readings): put the datetime into each of their fields too.
                    for key in nested_value[0]:
                        data = json.dumps({**body, field: [{**nested_value[0], key: value}]})
                        assert_no_server_error(request(client(world, entry), entry, world.url(entry), data=data))
                data = json.dumps({**body, field: value})
                assert_no_server_error(request(client(world, entry), entry, world.url(entry), data=data))

    @rows()
    def test_non_utf8_query_string(self, world, entry):
        body = json.dumps(valid_body(world, entry)) if entry.method in BODY_METHODS else b""
        for query in ["q=%FF%FE", "q=\xff\xfe", "%FF=%FE", "machine=%ED%A0%80"]:
            response = request(client(world, entry), entry, world.url(entry), data=body, query=query)
            assert_no_server_error(response)

    @rows()
    @pytest.mark.parametrize(
        "header",
        [
            {"HTTP_AUTHORIZATION": "Bearer \xff\xfe\xfd"},
            {"HTTP_AUTHORIZATION": "Bearer hlts_\xff\xfe\xfd"},
            {"HTTP_AUTHORIZATION": "\xff\xfe \xfd"},
            {"HTTP_X_API_KEY": "hlts_\xff\xfe\xfd"},
            {"HTTP_X_API_KEY": "\xff" * 5000},
        ],
        ids=["jwt", "bearer-key", "scheme", "x-api-key", "long-x-api-key"],
    )
    def test_non_utf8_credentials_are_401(self, world, entry, header):
        from rest_framework.test import APIClient

        anonymous = APIClient()
        anonymous.raise_request_exception = False
        body = json.dumps(valid_body(world, entry)) if entry.method in BODY_METHODS else b""
        response = request(anonymous, entry, world.url(entry), data=body, **header)
        if entry.status_for("anonymous") == 401:
            assert response.status_code == 401
            assert isinstance(response.json()["detail"], str)
        else:
            # The login endpoints read no credentials from headers.
            assert_no_server_error(response)


class TestCoreDefences:
    """The core pieces the sweep relies on, each on its own."""

    def test_renderer_escapes_what_utf8_cannot_carry(self):
        from core.renderers import JSONRenderer

        rendered = JSONRenderer().render({"temperature": ['"\ud800" is not a valid choice.']})
        assert json.loads(rendered) == {"temperature": ['"\ud800" is not a valid choice.']}
        assert JSONRenderer().render({"name": "Zürich"}) == '{"name":"Zürich"}'.encode()  # plain UTF-8 otherwise

    def test_parser_turns_deep_nesting_into_a_parse_error(self):
        import io

        from rest_framework.exceptions import ParseError

        from core.parsers import JSONParser

        with pytest.raises(ParseError, match="nested too deeply"):
            JSONParser().parse(io.BytesIO(b"[" * 100_000 + b"]" * 100_000))
        assert JSONParser().parse(io.BytesIO(b'{"a": [1]}')) == {"a": [1]}

    def test_body_limit_applies_to_the_api_only(self, client, admin_user):
        client.force_login(admin_user)
        big = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
        response = client.generic("POST", "/admin/login/", data=b"x", CONTENT_LENGTH=str(big))
        assert response.status_code != 413  # Django's own limit governs the admin's forms

    def test_malformed_content_length_is_no_body(self, admin_client):
        response = admin_client.generic("GET", "/api/v1/settings/profile", CONTENT_LENGTH="lots")
        assert response.status_code == 200

    def test_bad_request_outside_the_api_keeps_djangos_page(self, client):
        query = "&".join(f"p{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
        response = client.get("/admin/login/", QUERY_STRING=query)
        assert response.status_code == 400
        assert response["Content-Type"].startswith("text/html")
