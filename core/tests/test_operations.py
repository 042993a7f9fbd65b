"""Operations (contract Part 2): /healthz, /readyz, /metrics, request ids, the request log line.

In-process tests through Django's test client; the multi-worker scrape and the
real gunicorn access log are in core/tests/test_live_gunicorn.py.
"""

import json
import logging
import socket
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from core import metrics
from core.caller import Caller
from core.logging import JsonFormatter, RequestIdFilter, redact
from haltless import views as site_views
from haltless.testing import T0, client_for_key
from telemetry.tests.conftest import machine as machine  # a fixture

pytestmark = pytest.mark.django_db

METRICS_TOKEN = "scrape-token-for-tests-0123456789"
INGEST = "/api/v1/ingest"
HEARTBEAT = "/api/v1/agent/heartbeat"


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def closed_loopback_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reading(sensor="bearing_temp", minutes=0, value=21.5):
    return {"machine": "m1", "sensor": sensor, "ts": (T0 + timedelta(minutes=minutes)).isoformat(), "value": value}


# --- Liveness and readiness ------------------------------------------------------------------


class TestHealthz:
    def test_answers_200_and_touches_nothing(self, client, settings, monkeypatch, django_assert_num_queries):
        settings.CELERY_TASK_ALWAYS_EAGER = False

        def no_broker(*args, **kwargs):
            raise AssertionError("/healthz must not touch the broker")

        monkeypatch.setattr(site_views.celery_app, "connection_for_write", no_broker)
        with django_assert_num_queries(0):
            response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert response["Cache-Control"].startswith("max-age=0")

    def test_answers_even_when_the_database_is_down(self, client, monkeypatch):
        monkeypatch.setattr(connection, "cursor", _unreachable)
        assert client.get("/healthz").status_code == 200


def _unreachable(*args, **kwargs):
    raise OperationalError("connection refused")


@pytest.fixture
def migrations_unknown(monkeypatch):
    # The "migrations applied" answer is remembered per process; each test starts without it.
    monkeypatch.setattr(site_views, "_migrations_known_applied", False)


@pytest.mark.usefixtures("migrations_unknown")
class TestReadyz:
    def test_ready_with_a_migrated_database(self, client, settings):
        settings.CELERY_TASK_ALWAYS_EAGER = True  # embedded: no broker to check
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok"}}

    def test_unreachable_database_is_503(self, client, settings, monkeypatch):
        settings.CELERY_TASK_ALWAYS_EAGER = True
        monkeypatch.setattr(connection, "cursor", _unreachable)
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "checks": {"database": "down"}}

    def test_unapplied_migrations_are_503(self, client, settings, monkeypatch):
        settings.CELERY_TASK_ALWAYS_EAGER = True
        from django.db.migrations.executor import MigrationExecutor

        real_plan = MigrationExecutor.migration_plan

        def plan_with_one_pending(self, targets, clean_start=False):
            # As if the newest migration of `audit` were not applied yet.
            leaf = max(node for node in self.loader.graph.leaf_nodes() if node[0] == "audit")
            return real_plan(self, targets, clean_start) or [(self.loader.graph.nodes[leaf], False)]

        monkeypatch.setattr(MigrationExecutor, "migration_plan", plan_with_one_pending)
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "migrations": "pending"}}

    def test_a_down_broker_is_degraded_not_unready(self, client, settings):
        from haltless.celery import app as celery_app

        settings.CELERY_TASK_ALWAYS_EAGER = False  # as when CELERY_BROKER_URL is set
        url = f"redis://127.0.0.1:{closed_loopback_port()}/5"
        saved = celery_app.conf.broker_url
        celery_app.conf.broker_url = url
        try:
            response = client.get("/readyz")
        finally:
            celery_app.conf.broker_url = saved
        assert response.status_code == 200
        assert response.json() == {
            "status": "degraded",
            "checks": {"database": "ok", "migrations": "ok", "broker": "down"},
        }

    @pytest.mark.celery_worker
    def test_reaches_the_real_broker(self, client, settings):
        settings.CELERY_TASK_ALWAYS_EAGER = False
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["checks"]["broker"] == "ok"

    def test_slash_variant(self, client, settings):
        settings.CELERY_TASK_ALWAYS_EAGER = True
        assert client.get("/readyz/").status_code == 200


# --- /metrics ----------------------------------------------------------------------------------


class TestMetricsAccess:
    def test_unset_token_is_404_even_with_a_bearer(self, client, settings):
        settings.METRICS_TOKEN = ""
        response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}

    @pytest.mark.parametrize(
        "header",
        [None, f"Bearer {METRICS_TOKEN}x", f"Bearer {METRICS_TOKEN[:-1]}", f"Basic {METRICS_TOKEN}", METRICS_TOKEN],
        ids=["missing", "longer", "shorter", "other-scheme", "no-scheme"],
    )
    def test_missing_or_wrong_token_is_404(self, client, settings, header):
        settings.METRICS_TOKEN = METRICS_TOKEN
        extra = {"HTTP_AUTHORIZATION": header} if header else {}
        response = client.get("/metrics", **extra)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}

    def test_right_token_gets_the_text_format(self, client, settings):
        settings.METRICS_TOKEN = METRICS_TOKEN
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
        assert response.status_code == 200
        assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        names = {family.name for family in text_string_to_metric_families(response.content.decode())}
        expected = {"haltless_http_request_duration_seconds", "haltless_readings_accepted", "haltless_celery_tasks"}
        assert expected <= names


class TestRequestMetrics:
    def test_labelled_by_route_template_method_and_status(self, admin_client, machine):
        labels = {"route": "/api/v1/machines/<uuid:pk>", "method": "GET", "status": "200"}
        before = sample("haltless_http_request_duration_seconds_count", **labels)
        for _ in range(3):
            assert admin_client.get(f"/api/v1/machines/{machine.pk}").status_code == 200
        assert sample("haltless_http_request_duration_seconds_count", **labels) == before + 3
        # The raw path is never a label value.
        raw = f"/api/v1/machines/{machine.pk}"
        assert sample("haltless_http_request_duration_seconds_count", route=raw, method="GET", status="200") == 0

    def test_unknown_paths_share_one_series(self, client):
        labels = {"route": "unmatched", "method": "GET", "status": "404"}
        before = sample("haltless_http_request_duration_seconds_count", **labels)
        client.get("/no/such/page")
        client.get("/hlts_looks_like_a_secret")
        assert sample("haltless_http_request_duration_seconds_count", **labels) == before + 2

    def test_odd_methods_are_other(self, client):
        before = sample("haltless_http_request_duration_seconds_count", route="/healthz", method="other", status="405")
        client.generic("BREW", "/healthz")
        assert (
            sample("haltless_http_request_duration_seconds_count", route="/healthz", method="other", status="405")
            == before + 1
        )


class TestIngestMetrics:
    def test_accepted_readings_are_counted(self, key_client, machine):
        before = sample("haltless_readings_accepted_total")
        batches = sample("haltless_ingest_batches_total", outcome="accepted")
        body = {"readings": [reading(minutes=i) for i in range(4)]}
        assert key_client.post(INGEST, body, format="json").status_code == 202
        assert sample("haltless_readings_accepted_total") == before + 4
        assert sample("haltless_ingest_batches_total", outcome="accepted") == batches + 1

    def test_refused_readings_are_counted_by_reason(self, key_client, machine):
        before = sample("haltless_readings_refused_total", reason="invalid")
        accepted = sample("haltless_readings_accepted_total")
        body = {"readings": [reading(minutes=1), reading(sensor="no_such_sensor", minutes=2), reading(minutes=3)]}
        assert key_client.post(INGEST, body, format="json").status_code == 400
        assert sample("haltless_readings_refused_total", reason="invalid") == before + 3
        assert sample("haltless_readings_accepted_total") == accepted

    def test_oversized_body_is_a_refused_batch(self, key_client, machine):
        from telemetry.api.parsers import MAX_INGEST_BODY_BYTES

        before = sample("haltless_ingest_batches_total", outcome="too_large")
        response = key_client.post(INGEST, b"[" + b" " * MAX_INGEST_BODY_BYTES + b"]", content_type="application/json")
        assert response.status_code == 413
        assert sample("haltless_ingest_batches_total", outcome="too_large") == before + 1


class TestAuthFailureMetrics:
    @pytest.mark.parametrize(
        ("secret", "reason"),
        [("hlts_not-a-well-formed-key", "invalid"), ("hlts_" + "A" * 32 + "000000", "invalid")],
    )
    def test_bad_secrets(self, api_client, secret, reason):
        before = sample("haltless_api_key_auth_failures_total", reason=reason)
        assert api_client.get(HEARTBEAT, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
        assert sample("haltless_api_key_auth_failures_total", reason=reason) == before + 1

    def test_revoked_expired_and_scope(self, make_api_key):
        from apikeys.models import ApiKey

        revoked = make_api_key(name="revoked")
        ApiKey.objects.filter(pk=revoked.api_key.pk).update(revoked_at=timezone.now())
        expired = make_api_key(name="expired", expires_at=timezone.now() + timedelta(seconds=1))
        ApiKey.objects.filter(pk=expired.api_key.pk).update(expires_at=timezone.now() - timedelta(days=1))
        reader = make_api_key(name="reader", scopes="read_only")
        counts = {r: sample("haltless_api_key_auth_failures_total", reason=r) for r in ("revoked", "expired", "scope")}

        assert client_for_key(revoked.secret).get(HEARTBEAT).status_code == 401
        assert client_for_key(expired.secret).get(HEARTBEAT).status_code == 401
        assert client_for_key(reader.secret).get(HEARTBEAT).status_code == 403

        for reason, before in counts.items():
            assert sample("haltless_api_key_auth_failures_total", reason=reason) == before + 1, reason


class TestRateLimitMetrics:
    @pytest.fixture
    def limited_key(self, make_api_key):
        from apikeys.models import ApiKey

        issued = make_api_key(scopes=["ingest", "agent"], name="limited")
        ApiKey.objects.filter(pk=issued.api_key.pk).update(requests_per_minute=2, readings_per_minute=5)
        return issued

    def test_a_keys_request_limit(self, limited_key):
        before = sample("haltless_rate_limited_requests_total", limit="key_requests")
        client = client_for_key(limited_key.secret)
        assert [client.get(HEARTBEAT).status_code for _ in range(4)] == [200, 200, 429, 429]
        assert sample("haltless_rate_limited_requests_total", limit="key_requests") == before + 2

    def test_a_keys_readings_limit_is_a_refused_batch_too(self, limited_key, machine):
        limited = sample("haltless_rate_limited_requests_total", limit="key_readings")
        refused = sample("haltless_readings_refused_total", reason="rate_limited")
        client = client_for_key(limited_key.secret)
        assert client.post(INGEST, {"readings": [reading(minutes=i) for i in range(4)]}).status_code == 202
        assert client.post(INGEST, {"readings": [reading(minutes=10 + i) for i in range(3)]}).status_code == 429
        assert sample("haltless_rate_limited_requests_total", limit="key_readings") == limited + 1
        assert sample("haltless_readings_refused_total", reason="rate_limited") == refused + 3

    def test_failed_login_throttle(self, api_client, admin_user, settings):
        before = sample("haltless_rate_limited_requests_total", limit="throttle")
        body = {"email": admin_user.email, "password": "Wrong-Guess-2031!"}
        statuses = [api_client.post("/api/v1/auth/token", body).status_code for _ in range(11)]
        assert statuses[-1] == 429
        assert sample("haltless_rate_limited_requests_total", limit="throttle") == before + statuses.count(429)


class TestAllowlistMetric:
    def test_a_use_from_outside_the_allowlist(self, make_api_key):
        from apikeys.models import ApiKey

        issued = make_api_key(name="fenced")
        ApiKey.objects.filter(pk=issued.api_key.pk).update(allowed_cidrs=["192.0.2.0/24"])
        before = sample("haltless_api_key_auth_failures_total", reason="ip_denied")
        assert client_for_key(issued.secret).get(HEARTBEAT).status_code == 403  # the test client is 127.0.0.1
        assert sample("haltless_api_key_auth_failures_total", reason="ip_denied") == before + 1


class TestRetentionMetrics:
    def test_a_run_counts_its_outcome_rows_and_duration(
        self, admin_client, tenant, machine, django_capture_on_commit_callbacks
    ):
        from telemetry.models import SensorReading

        sensor = machine.sensors.get(key="bearing_temp")
        now = timezone.now()
        SensorReading.objects.bulk_create(
            SensorReading(tenant_id=tenant.pk, sensor=sensor, ts=now - timedelta(days=days), value=1.0)
            for days in (400, 300, 200, 1)
        )
        runs = sample("haltless_retention_runs_total", trigger="manual", outcome="succeeded")
        rows = sample("haltless_retention_rows_deleted_total", data="readings")
        durations = sample("haltless_retention_run_duration_seconds_count", trigger="manual")

        with django_capture_on_commit_callbacks(execute=True):  # the task is sent on commit; eager, it runs here
            response = admin_client.post("/api/v1/settings/admin/retention/run")
        assert response.status_code == 202

        assert sample("haltless_retention_runs_total", trigger="manual", outcome="succeeded") == runs + 1
        assert sample("haltless_retention_rows_deleted_total", data="readings") == rows + 3
        assert sample("haltless_retention_run_duration_seconds_count", trigger="manual") == durations + 1
        assert sample("haltless_retention_last_success_timestamp_seconds") >= now.timestamp()
        assert sample("haltless_celery_tasks_total", task="retention.run_execute", outcome="succeeded") >= 1


class TestWebhookMetrics:
    @pytest.fixture
    def receiver(self):
        """A webhook receiver on 127.0.0.1 answering the statuses it is given, in order."""
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        statuses: list[int] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(statuses.pop(0))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_port}/hook", statuses
        server.shutdown()
        server.server_close()

    def test_events_and_attempts_by_outcome(self, tenant, settings, receiver):
        from webhooks import services as webhooks

        settings.WEBHOOK_ALLOW_LOOPBACK = True
        url, statuses = receiver
        webhooks.webhook_endpoint_set(by=Caller.system(tenant_id=tenant.pk), url=url)
        kind = "api_key.rotated"
        before = {o: sample("haltless_webhook_deliveries_total", type=kind, outcome=o) for o in ("delivered", "failed")}
        events = sample("haltless_webhook_events_total", type=kind)
        timed = sample("haltless_webhook_delivery_duration_seconds_count")

        delivery = webhooks.webhook_event_enqueue(
            by=Caller.system(tenant_id=tenant.pk), type=kind, data={"key_id": "k"}
        )
        statuses += [500]
        assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk).status == "pending"
        statuses += [204]
        later = timezone.now() + timedelta(minutes=2)
        assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, now=later).status == "delivered"

        assert sample("haltless_webhook_events_total", type=kind) == events + 1
        assert sample("haltless_webhook_deliveries_total", type=kind, outcome="failed") == before["failed"] + 1
        assert sample("haltless_webhook_deliveries_total", type=kind, outcome="delivered") == before["delivered"] + 1
        assert sample("haltless_webhook_delivery_duration_seconds_count") == timed + 2

    def test_a_refused_address_is_counted_as_refused(self, tenant, settings, receiver):
        from webhooks import services as webhooks

        settings.WEBHOOK_ALLOW_LOOPBACK = True
        webhooks.webhook_endpoint_set(by=Caller.system(tenant_id=tenant.pk), url=receiver[0])
        settings.WEBHOOK_ALLOW_LOOPBACK = False  # the operator changed their mind: loopback is refused now
        kind = "api_key.exposed"
        before = sample("haltless_webhook_deliveries_total", type=kind, outcome="refused")
        delivery = webhooks.webhook_event_enqueue(by=Caller.system(tenant_id=tenant.pk), type=kind, data={})
        assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk).status == "failed"
        assert sample("haltless_webhook_deliveries_total", type=kind, outcome="refused") == before + 1


class TestLabelsStayBounded:
    def test_unknown_values_are_other(self):
        before = sample("haltless_api_key_auth_failures_total", reason="other")
        metrics.api_key_auth_failed(reason="user@example.com")
        metrics.rate_limited(limit="hlts_secret")
        assert sample("haltless_api_key_auth_failures_total", reason="other") == before + 1
        assert sample("haltless_api_key_auth_failures_total", reason="user@example.com") == 0
        assert sample("haltless_rate_limited_requests_total", limit="hlts_secret") == 0


# --- Request ids and the request log line ---------------------------------------------------


class TestRequestId:
    def test_a_good_one_is_kept_and_returned(self, client):
        response = client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a:req/42")
        assert response["X-Request-ID"] == "lb-7f3a:req/42"

    @pytest.mark.parametrize(
        "given",
        ["x" * 129, "has space", "tab\there", "caf\u00e9", ""],
        ids=["long", "space", "control", "utf8", "empty"],
    )
    def test_a_bad_one_is_replaced(self, client, given):
        response = client.get("/healthz", HTTP_X_REQUEST_ID=given)
        made = response["X-Request-ID"]
        assert made != given and len(made) == 32 and int(made, 16) >= 0

    def test_128_visible_characters_are_accepted(self, client):
        given = "".join(chr(33 + i % 94) for i in range(128))
        assert client.get("/healthz", HTTP_X_REQUEST_ID=given)["X-Request-ID"] == given

    def test_made_when_absent(self, client):
        first, second = client.get("/healthz")["X-Request-ID"], client.get("/healthz")["X-Request-ID"]
        assert len(first) == 32 and first != second


class JsonCapture(logging.Handler):
    """The production handler's pipeline (filters, JSON formatter) into a list of lines."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.addFilter(RequestIdFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))

    def parsed(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def json_log():
    handler = JsonCapture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


class Opaque:
    def __str__(self):
        return "an opaque thing"


class TestJsonLogLines:
    def test_one_line_per_request_with_its_fields(self, json_log, api_key, machine):
        client = Client()
        response = client.get(HEARTBEAT, HTTP_AUTHORIZATION=f"Bearer {api_key.secret}", HTTP_X_REQUEST_ID="req-1")
        assert response.status_code == 200
        lines = [line for line in json_log.parsed() if line["logger"] == "haltless.request"]
        assert len(lines) == 1
        line = lines[0]
        assert line["request_id"] == "req-1"
        assert (line["method"], line["route"], line["status"]) == ("GET", "/api/v1/agent/heartbeat", 200)
        assert line["tenant"] == str(api_key.api_key.tenant_id)
        assert (line["caller"], line["key_prefix"]) == ("api_key", api_key.api_key.prefix)
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
        assert line["level"] == "INFO" and line["time"].endswith("Z")
        assert api_key.secret not in "\n".join(json_log.lines)

    def test_user_and_anonymous_callers(self, json_log, admin_user, admin_client):
        admin_client.get("/api/v1/users")
        Client().get("/healthz")
        lines = [line for line in json_log.parsed() if line["logger"] == "haltless.request"]
        assert [(line["caller"], line["tenant"], line["key_prefix"]) for line in lines] == [
            ("user", str(admin_user.tenant_id), None),
            ("anonymous", None, None),
        ]

    def test_audit_events_have_their_own_line(self, json_log, admin_client, tenant):
        response = admin_client.post("/api/v1/settings/api-keys", {"name": "new", "scopes": "read_only"}, format="json")
        assert response.status_code == 201
        audits = [line for line in json_log.parsed() if line.get("action") == "api_key.create"]
        assert len(audits) == 1
        assert audits[0]["tenant"] == str(tenant.pk) and audits[0]["target_type"] == "apikey"
        # Every line of the request carries its id.
        request_id = response["X-Request-ID"]
        assert {line["request_id"] for line in json_log.parsed()} == {request_id}
        assert response.json()["key"] not in "\n".join(json_log.lines)

    def test_a_secret_in_a_message_is_redacted(self, json_log, api_key):
        token = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJl"
        logging.getLogger("anything").warning("got %s and %s with password=hunter2&x=1", api_key.secret, token)
        (line,) = [line for line in json_log.parsed() if line["logger"] == "anything"]
        assert line["message"] == "got hlts_[REDACTED] and [REDACTED] with password=[REDACTED]&x=1"

    def test_a_traceback_and_values_json_has_no_type_for_are_written(self, json_log, api_key):
        when = timezone.now()
        try:
            raise ValueError(f"bad key {api_key.secret}")
        except ValueError:
            logging.getLogger("anything").exception(
                "failed at %s", "step 2", extra={"when": when, "ids": (1, 2), "thing": Opaque()}
            )
        (line,) = [line for line in json_log.parsed() if line["logger"] == "anything"]
        assert (line["level"], line["message"]) == ("ERROR", "failed at step 2")
        assert line["when"] == when.isoformat().replace("+00:00", "Z") and line["ids"] == [1, 2]
        assert line["thing"] == "an opaque thing"
        assert line["exc_info"].startswith("Traceback (most recent call last):")
        assert line["exc_info"].endswith("ValueError: bad key hlts_[REDACTED]")

    def test_each_second_has_its_own_time_and_a_stack_is_written(self):
        formatter = JsonFormatter()
        first, second = (
            logging.makeLogRecord({"msg": "m", "created": t, "msecs": ms})
            for t, ms in [
                (1_700_000_000.5, 500.0),
                (1_700_000_001.25, 250.0),
            ]
        )
        second.stack_info = "Stack (most recent call last):\n  here"

        lines = [json.loads(formatter.format(record)) for record in (first, second, first)]

        assert [line["time"] for line in lines] == [
            "2023-11-14T22:13:20.500Z",
            "2023-11-14T22:13:21.250Z",
            "2023-11-14T22:13:20.500Z",
        ]
        assert lines[1]["stack_info"] == "Stack (most recent call last):\n  here"
        assert "stack_info" not in lines[0]

    def test_records_skip_the_fields_no_format_prints(self):
        # core.logging.configure (LOGGING_CONFIG) ran when Django set up.
        record = logging.getLogger("anything").makeRecord("anything", logging.INFO, "f", 1, "m", (), None)
        assert (record.threadName, record.processName, record.process) == (None, None, None)
        assert logging._srcfile is None


class TestRedact:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("GET /x?api_key=hlts_abc12345 HTTP/1.1", "GET /x?api_key=[REDACTED] HTTP/1.1"),
            ("Authorization: Bearer abc.def", "Authorization: Bearer [REDACTED]"),
            ("sent hlte_Zz09Zz09Zz09 end", "sent hlte_[REDACTED] end"),
            ("prefix hlts_Ab3dE7x is shown", "prefix hlts_Ab3dE7x is shown"),
            ("?refresh=eyJa.eyJb.c&page=2", "?refresh=[REDACTED]&page=2"),
            ("nothing to see", "nothing to see"),
        ],
    )
    def test_patterns(self, text, expected):
        assert redact(text) == expected
