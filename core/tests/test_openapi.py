"""core.openapi.ApiAutoSchema: every operation documents the errors the shared conventions produce."""

from functools import cache

import pytest
from drf_spectacular.generators import SchemaGenerator


@cache
def operations() -> dict[tuple[str, str], dict]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method.upper(), path): operation
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }


def responses(method: str, path: str) -> dict:
    return operations()[(method, "/api/v1" + path)]["responses"]


class TestSharedErrorResponses:
    def test_every_operation_documents_401(self):
        assert operations()
        assert all("401" in operation["responses"] for operation in operations().values())

    def test_error_bodies_have_the_detail_shape(self):
        schema = responses("GET", "/settings/audit-log")["403"]["content"]["application/json"]["schema"]
        assert schema == {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}

    def test_login_is_open_to_anyone_but_an_api_key(self):
        # 403: a request made with an API key needs a user login; 429: the login throttles.
        assert {"401", "403", "429"} <= set(responses("POST", "/auth/token"))

    @pytest.mark.parametrize("code", ["400", "413", "415"])
    def test_a_body_can_be_refused(self, code):
        assert code in responses("POST", "/settings/api-keys")

    def test_a_read_without_parameters_has_no_400(self):
        assert "400" not in responses("GET", "/settings/role-permissions")

    def test_a_read_with_filters_can_be_refused(self):
        assert "400" in responses("GET", "/settings/api-keys")  # ?status=, ?unused_for_days=, ...

    def test_path_parameters_and_page_numbers_can_be_404(self):
        assert "404" in responses("DELETE", "/settings/api-keys/{key_id}")
        assert "404" in responses("GET", "/settings/audit-log")  # ?page= past the end
        assert "404" not in responses("GET", "/settings/api-keys")

    def test_throttled_endpoints_document_429(self):
        assert "429" in responses("POST", "/auth/token")
        assert "429" not in responses("GET", "/settings/audit-log")

    def test_throttles_applied_by_hand_are_named_by_the_view(self):
        # users' wrong-current-password throttle is not a DRF throttle class.
        assert "429" in responses("POST", "/settings/change-password")
        assert "429" in responses("PATCH", "/settings/profile")

    def test_what_a_view_documents_itself_is_kept(self):
        # The AI probe documents its own 502; the shared errors are added beside it.
        ai_models = responses("GET", "/settings/ai/models")
        assert "502" in ai_models and "401" in ai_models
