"""deploy/: the Grafana dashboard and the Prometheus rules name only metrics the service exposes.

The names are read from every PromQL expression of the dashboard and the rules
and looked up in a real /metrics answer, by the sample names each family type
gives (a counter's `_total`, a histogram's `_bucket`, `_sum`, `_count`). The
rules themselves are checked and unit-tested with promtool, here when it is
installed and always in CI (.ci/run).
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings as django_settings
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(django_settings.BASE_DIR)
DEPLOY = REPO / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "haltless.json"
METRIC_NAME = re.compile(r"\bhaltless_[a-z0-9_]+")
TOKEN = "deploy-test-token-0123456789"

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    exprs += [variable["query"] for variable in dashboard["templating"]["list"]]
    return exprs


def alert_expressions() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


@pytest.fixture
def exposed_sample_names(client, settings) -> set[str]:
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.content.decode()):
        if family.name.startswith("haltless_"):
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


class TestDeployReferencesOnlyExistingMetrics:
    def test_the_metric_list_is_complete(self, exposed_sample_names):
        # Guards the test: every family of core.metrics is in the answer, labelled or not.
        assert {"haltless_readings_accepted_total", "haltless_webhook_deliveries_total"} <= exposed_sample_names
        assert "haltless_retention_run_duration_seconds_bucket" in exposed_sample_names

    @pytest.mark.parametrize("source", ["dashboard", "alerts"])
    def test_every_referenced_metric_exists(self, exposed_sample_names, source):
        exprs = dashboard_expressions() if source == "dashboard" else alert_expressions()
        referenced = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
        assert len(referenced) >= 5
        assert sorted(referenced - exposed_sample_names) == []

    def test_the_alerts_the_operators_asked_for_are_there(self):
        names = {rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}
        assert {
            "HaltlessIngestStopped",
            "HaltlessHighErrorRatio",
            "HaltlessAuthFailuresSpike",
            "HaltlessRetentionFailed",
            "HaltlessWebhookFailures",
        } <= names

    def test_the_checker_would_see_a_wrong_name(self, exposed_sample_names):
        assert "haltless_readings_accepted" not in exposed_sample_names  # a counter without _total
        assert "haltless_readings_acepted_total" not in exposed_sample_names


class TestComposeScrapesWebAndWorker:
    def test_targets_match_the_services(self):
        compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
        prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
        targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]}
        assert targets == {"haltless-web": ["web:8000"], "haltless-worker": [f"worker:{9808}"]}
        assert compose["services"]["worker"]["environment"]["WORKER_METRICS_PORT"] == "9808"
        assert all(
            job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
            for job in prometheus["scrape_configs"]
        )
        assert "metrics_token" in compose["services"]["prometheus"]["secrets"]
        mounts = compose["services"]["prometheus"]["volumes"]
        assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts

    def test_health_checks_use_the_right_endpoint(self):
        compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
        assert "/readyz" in compose["services"]["web"]["healthcheck"]["test"][-1]
        dockerfile = (REPO / "Dockerfile").read_text()
        healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :].split("\n\n")[0]
        assert "/healthz" in healthcheck and "/readyz" not in healthcheck


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)")
class TestPromtool:
    def test_rules_check(self):
        result = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_rules_unit_tests(self):
        result = subprocess.run(["promtool", "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
