"""Boundaries at the boundary for tenant settings: each documented limit, at it and one past it (issue 12)."""

import json

import pytest

from core import guarded_fetch
from settings_app import dashboard, probe
from settings_app.services import MAX_AI_API_KEY_LENGTH
from settings_app.tests.fake_servers import OLLAMA_TAGS, send_json, serve

pytestmark = pytest.mark.django_db


@pytest.mark.usefixtures("allow_loopback")
class TestProbeReadsAtMostOneMebibyte:
    def answer_of(self, size: int):
        body = json.dumps(OLLAMA_TAGS).encode()
        padded = body + b" " * (size - len(body))

        def handler(h):
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(padded)))
            h.end_headers()
            h.wfile.write(padded)

        return handler

    def test_an_answer_of_exactly_one_mebibyte_is_read(self, admin_client):
        with serve(self.answer_of(probe.MAX_RESPONSE_BYTES)) as fake:
            response = admin_client.get("/api/v1/settings/ai/models", {"probe_url": fake.url})
        assert response.status_code == 200
        assert len(response.json()["models"]) == 2

    def test_one_byte_more_is_a_failure(self, admin_client):
        with serve(self.answer_of(probe.MAX_RESPONSE_BYTES + 1)) as fake:
            response = admin_client.get("/api/v1/settings/ai/models", {"probe_url": fake.url})
        assert response.status_code == 502


class TestProbeUrlLength:
    def url(self, length: int) -> str:
        head = "http://192.168.1.50/"
        return head + "a" * (length - len(head))

    def test_2048_characters_are_probed(self, admin_client, monkeypatch):
        asked = []
        monkeypatch.setattr(probe, "_probe", lambda target, **kw: asked.append(target) or probe.ProbeResult("ollama"))
        response = admin_client.get("/api/v1/settings/ai/models", {"probe_url": self.url(guarded_fetch.MAX_URL_LENGTH)})
        assert response.status_code == 200
        assert len(asked) == 1

    def test_2049_are_refused(self, admin_client, connection_attempts):
        too_long = self.url(guarded_fetch.MAX_URL_LENGTH + 1)
        response = admin_client.get("/api/v1/settings/ai/models", {"probe_url": too_long})
        assert response.json() == {"probe_url": ["The URL is longer than 2048 characters."]}


class TestAiKeyLength:
    def patch(self, client, key: str):
        body = {
            "ai_provider": "custom",
            "custom_ai_url": "http://192.168.1.50:11434",
            "custom_ai_model": "m",
            "custom_ai_api_key": key,
        }
        return client.patch("/api/v1/settings/ai", body, format="json")

    def test_the_longest_key_is_kept(self, admin_client):
        response = self.patch(admin_client, "k" * MAX_AI_API_KEY_LENGTH)
        assert response.status_code == 200
        assert response.json()["custom_ai_api_key_set"] is True

    def test_one_character_more_is_refused(self, admin_client):
        response = self.patch(admin_client, "k" * (MAX_AI_API_KEY_LENGTH + 1))
        assert response.status_code == 400
        assert list(response.json()) == ["custom_ai_api_key"]


class TestDashboardPresetSizes:
    def preset(self, widgets: int, metrics: int) -> dict:
        return {
            "role": "operator",
            "widgets": [{"id": f"w{i}", "labelKey": "k", "visible": True, "size": "full"} for i in range(widgets)],
            "statMetrics": [{"metricId": f"m{i}"} for i in range(metrics)],
        }

    def test_fifty_widgets_and_twenty_metrics_are_saved(self, admin_client):
        body = self.preset(dashboard.MAX_WIDGETS, dashboard.MAX_STAT_METRICS)
        assert admin_client.put("/api/v1/settings/dashboard-presets", body, format="json").status_code == 200

    @pytest.mark.parametrize(("widgets", "metrics", "field"), [(51, 20, "widgets"), (50, 21, "statMetrics")])
    def test_one_more_is_refused(self, admin_client, widgets, metrics, field):
        response = admin_client.put("/api/v1/settings/dashboard-presets", self.preset(widgets, metrics), format="json")
        assert response.status_code == 400
        assert list(response.json()) == [field]


def test_the_probe_answer_fixture_is_a_model_list():
    with serve(lambda h: send_json(h, 200, OLLAMA_TAGS)) as fake:
        assert fake.url.startswith("http://127.0.0.1:")
