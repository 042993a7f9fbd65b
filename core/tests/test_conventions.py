"""The API conventions every endpoint shares (see core/)."""

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


class TestTrailingSlash:
    def test_documented_path_without_slash(self, admin_client):
        assert admin_client.get("/api/v1/settings/profile").status_code == 200

    def test_same_path_with_slash_is_served_not_redirected(self, admin_client):
        response = admin_client.get("/api/v1/settings/profile/")
        assert response.status_code == 200
        assert response.json()["email"] == "admin@acme.test"

    def test_post_with_slash_keeps_its_body(self, api_client, admin_user, password):
        response = api_client.post("/api/v1/auth/token/", {"email": admin_user.email, "password": password})
        assert response.status_code == 200

    def test_healthz_with_slash(self, api_client):
        assert api_client.get("/healthz/").status_code == 200


@pytest.mark.urls("core.tests.urls")
class TestStrictBodies:
    def test_unknown_field_is_400_naming_it(self, admin_client):
        response = admin_client.post("/api/v1/test/echo", {"name": "x", "nmae": "typo"})
        assert response.status_code == 400
        assert response.json() == {"nmae": ["Unknown field."]}

    def test_read_only_field_in_body_is_400(self, admin_client):
        response = admin_client.post("/api/v1/test/echo", {"name": "x", "id": "1"})
        assert response.status_code == 400
        assert response.json() == {"id": ["This field is read-only."]}

    def test_known_fields_pass(self, admin_client):
        response = admin_client.post("/api/v1/test/echo", {"name": "x"})
        assert response.status_code == 200
        assert response.json() == {"name": "x"}

    def test_malformed_json_is_400(self, admin_client):
        response = admin_client.post("/api/v1/test/echo", data="{not json", content_type="application/json")
        assert response.status_code == 400
        assert "JSON parse error" in response.json()["detail"]

    def test_wrong_content_type_is_415(self, admin_client):
        response = admin_client.post(
            "/api/v1/test/echo", data="name=x", content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 415


@pytest.mark.urls("core.tests.urls")
class TestAccessGate:
    def test_anonymous_is_401_with_challenge(self, api_client):
        response = api_client.post("/api/v1/test/echo", {"name": "x"})
        assert response.status_code == 401
        assert response.json() == {"detail": "Authentication credentials were not provided."}
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'

    def test_non_admin_is_403(self, viewer_client):
        response = viewer_client.post("/api/v1/test/echo", {"name": "x"})
        assert response.status_code == 403
        assert response.json() == {"detail": "Only a tenant admin may do this."}

    def test_api_key_on_user_only_endpoint_is_403(self, key_client):
        response = key_client.post("/api/v1/test/echo", {"name": "x"})
        assert response.status_code == 403
        assert response.json() == {"detail": "This endpoint requires a user login; API keys are not accepted here."}


@pytest.mark.urls("core.tests.urls")
class TestErrorPages:
    def test_unknown_api_path_is_json_404(self, api_client):
        response = api_client.get("/api/v1/no-such-thing")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}

    def test_unhandled_error_is_json_500_without_traceback(self, admin_client):
        admin_client.raise_request_exception = False
        response = admin_client.get("/api/v1/test/boom")
        assert response.status_code == 500
        assert response.json() == {"detail": "Internal server error."}
        assert b"hunter2" not in response.content
        assert b"Traceback" not in response.content


class TestSchemaAndDocs:
    def test_schema_generates_without_warnings(self, tmp_path):
        # --fail-on-warn turns every drf-spectacular warning into a failure.
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
        schema = (tmp_path / "schema.yaml").read_text()
        assert "/api/v1/auth/token:" in schema
        assert "jwtAuth" in schema and "apiKeyHeader" in schema

    def test_schema_endpoint(self, api_client):
        response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        assert response.status_code == 200
        assert response.json()["info"]["title"] == "Haltless Settings API"

    def test_swagger_ui_is_served_from_sidecar(self, client):
        response = client.get("/api/docs/")
        assert response.status_code == 200
        body = response.content.decode()
        assert "swagger-ui" in body
        assert "cdn" not in body.lower()


class TestSitePages:
    def test_landing_page_links_docs_admin_and_health(self, client):
        body = client.get("/").content.decode()
        for href in ('href="/api/docs/"', 'href="/admin/"', 'href="/healthz"'):
            assert href in body

    def test_healthz_is_liveness_only(self, client):
        # Readiness (database, migrations, broker) is /readyz: see core/tests/test_operations.py.
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    def test_admin_login_page(self, client):
        assert client.get("/admin/login/").status_code == 200


class TestDjangoValidationErrorFromAService:
    def test_is_a_400_in_drf_shape(self, rf):
        from django.core.exceptions import ValidationError

        from core.exceptions import api_exception_handler

        field_error = api_exception_handler(ValidationError({"name": "Bad name."}), {})
        assert (field_error.status_code, field_error.data) == (400, {"name": ["Bad name."]})
        plain_error = api_exception_handler(ValidationError("Not allowed."), {})
        assert (plain_error.status_code, plain_error.data) == (400, {"detail": "Not allowed."})
