"""Every answer under /api/ is JSON, in every settings module (issue 12, item 10)."""

import json
import secrets

import pytest
import requests
from django.test import Client

from core.tests.live import served
from users.tokens import token_pair_for

UNMATCHED = ["/api/v1/nope", "/api/v1/settings/nope", "/api/v1/machines/1/2/3", "/api/nope", "/api/v2/machines"]
TOO_DEEP = "JSON parse error - the document is nested too deeply."


def assert_json_not_found(response_status: int, content_type: str, body: bytes) -> None:
    assert response_status == 404
    assert content_type.startswith("application/json")
    assert json.loads(body) == {"detail": "Not found."}


class TestUnderDebug:
    """The local settings run with DEBUG on, where Django's own 404 and 500 pages are HTML."""

    @pytest.mark.django_db
    @pytest.mark.parametrize("path", UNMATCHED)
    @pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "OPTIONS"])
    def test_an_unmatched_path_is_a_json_404(self, settings, client, path, method):
        settings.DEBUG = True
        response = client.generic(method, path)
        assert_json_not_found(response.status_code, response["Content-Type"], response.content)

    @pytest.mark.django_db
    @pytest.mark.urls("core.tests.urls")
    def test_an_uncaught_exception_is_a_json_500_without_the_traceback(self, settings, admin_user):
        settings.DEBUG = True
        client = Client(raise_request_exception=False)
        access = token_pair_for(admin_user)["access"]
        response = client.get("/api/v1/test/boom", HTTP_AUTHORIZATION=f"Bearer {access}")
        assert response.status_code == 500
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"detail": "Internal server error."}

    def test_pages_outside_the_api_keep_their_html(self, settings, client):
        settings.DEBUG = True
        response = client.get("/nope")
        assert response.status_code == 404
        assert response["Content-Type"].startswith("text/html")


@pytest.fixture(scope="module")
def sqlite_file(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'answers.sqlite3'}"


SETTINGS_MODULES = {
    "haltless.settings.local": {},
    "haltless.settings.test": {},
    "haltless.settings.production": {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO",
    },
}


class TestOverHttpInEverySettingsModule:
    @pytest.mark.parametrize("module", list(SETTINGS_MODULES))
    def test_unmatched_paths_and_deep_json_are_json(self, module, sqlite_file):
        env = {"DATABASE_URL": sqlite_file, "DJANGO_DEBUG": "", **SETTINGS_MODULES[module]}
        env.pop("DJANGO_DEBUG")  # each module's own default
        headers = {"X-Forwarded-Proto": "https"}
        with served(module, env) as base_url:
            for path in UNMATCHED:
                response = requests.get(base_url + path, headers=headers, timeout=10, allow_redirects=False)
                assert_json_not_found(response.status_code, response.headers["Content-Type"], response.content)
                assert len(response.content) < 100
            deep = "[" * 100_000 + "]" * 100_000
            for path in ("/api/v1/ingest", "/api/v1/auth/token"):
                response = requests.post(
                    base_url + path,
                    data=deep,
                    headers={**headers, "Content-Type": "application/json", "Authorization": "Bearer x"},
                    timeout=10,
                )
                assert response.status_code in (400, 401), response.content[:200]
                if response.status_code == 400:
                    assert response.json() == {"detail": TOO_DEEP}


class TestDeepJson:
    @pytest.mark.django_db
    def test_ingest_does_not_show_pythons_text(self, key_client):
        deep = "[" * 100_000 + "]" * 100_000
        response = key_client.generic("POST", "/api/v1/ingest", deep, content_type="application/json")
        assert response.status_code == 400
        assert response.json() == {"detail": TOO_DEEP}
        assert "recursion" not in response.content.decode()

    @pytest.mark.django_db
    def test_a_settings_write_does_not_show_pythons_text(self, admin_client):
        deep = "[" * 100_000 + "]" * 100_000
        response = admin_client.generic(
            "PUT", "/api/v1/settings/role-permissions", deep, content_type="application/json"
        )
        assert response.status_code == 400
        assert response.json() == {"detail": TOO_DEEP}


@pytest.mark.django_db
class TestContentNegotiation:
    """core.negotiation skips DRF's parsing only where DRF's answer is the same (issue 14)."""

    @pytest.mark.parametrize(
        "accept", [None, "*/*", "application/json", "application/json; indent=2", "text/html, */*;q=0.8"]
    )
    def test_json_whatever_an_acceptable_accept_says(self, client, accept):
        headers = {} if accept is None else {"HTTP_ACCEPT": accept}
        response = client.get("/api/v1/machines", **headers)
        assert response.status_code == 401
        assert response["Content-Type"] == "application/json"
        assert response.json()["detail"]

    @pytest.mark.parametrize("query", ["", "?format=json"])
    def test_a_type_no_renderer_makes_is_still_406(self, client, query):
        response = client.get(f"/api/v1/machines{query}", HTTP_ACCEPT="text/html")
        assert response.status_code == 406

    def test_an_unknown_format_is_still_404(self, client):
        assert client.get("/api/v1/machines?format=xml").status_code == 404
