"""No password, API key or JWT ever reaches a log, whatever the level.

The main flows run with every logger at DEBUG and a handler on each, and every
record (message, arguments, extras, exception text) is searched for the
secrets the flows used.

SQL is logged too. `django.db.backends` logs queries only through the debug
cursor, which Django turns on for DEBUG=True; we force it with
`CaptureQueriesContext` instead of flipping DEBUG, because DEBUG changes other
behaviour (error pages, query bookkeeping) and this test is about what
production code writes. The SQL parameters then hold what the database
holds: an API key's DIGEST (never the key), a password's HASH (never the
password), and no token at all, which the test checks as well. A check that
the digest does appear proves that SQL was really captured.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apikeys.keys import digest
from haltless.testing import client_for_key, client_for_user
from users.tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Rotated-Secret-2031!"
NEW_USER_PASSWORD = "Onboarding-Secret-2031!"
WRONG_PASSWORD = "Wrong-Guess-2031!"
AI_SERVER_KEY = "sk-test-ai-server-credential-0123456789"


class RecordEverything(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> Iterator[str]:
        formatter = logging.Formatter()
        for record in self.records:
            yield formatter.format(record)  # message with its arguments, plus any traceback
            yield repr(vars(record))  # arguments and extras (e.g. SQL `params`), unformatted


@contextmanager
def all_logs_at_debug() -> Iterator[RecordEverything]:
    """Every logger, known now or created during the block, at DEBUG into one handler."""
    handler = RecordEverything()
    manager = logging.Logger.manager
    saved = {}

    def capture(logger: logging.Logger) -> None:
        if logger.name not in saved:
            saved[logger.name] = (logger.level, logger.disabled)
            logger.setLevel(logging.DEBUG)
            logger.disabled = False
            logger.addHandler(handler)

    real_get_logger = manager.getLogger

    def get_logger(name):
        logger = real_get_logger(name)
        capture(logger)
        return logger

    loggers = [logging.getLogger()] + [obj for obj in manager.loggerDict.values() if isinstance(obj, logging.Logger)]
    for logger in loggers:
        capture(logger)
    manager.getLogger = get_logger
    try:
        with CaptureQueriesContext(connection):
            yield handler
    finally:
        manager.getLogger = real_get_logger
        for name, (level, disabled) in saved.items():
            logger = logging.getLogger() if name == "root" else logging.getLogger(name)
            logger.setLevel(level)
            logger.disabled = disabled
            logger.removeHandler(handler)
        # Loggers capture() set up before any handler saw them: records propagate once per logger.
        handler.records = list({id(r): r for r in handler.records}.values())


@pytest.fixture
def telemetry_objects(tenant):
    from telemetry.models import Machine, Sensor

    machine = Machine.objects.create(tenant=tenant, external_id="press-01", name="Press 1")
    return machine, Sensor.objects.create(machine=machine, key="bearing_temp", kind=Sensor.Kind.TEMPERATURE)


def run_main_flows(api_client, admin_user, telemetry_objects) -> list[str]:
    """Log in, refresh, create/use/revoke a key, change a password, create a user, set an AI key.

    Returns every secret that went over the wire, each checked on its way.
    """
    machine, sensor = telemetry_objects
    secrets = [DEFAULT_PASSWORD, NEW_PASSWORD, NEW_USER_PASSWORD, WRONG_PASSWORD, AI_SERVER_KEY]

    refused = api_client.post("/api/v1/auth/token", {"email": admin_user.email, "password": WRONG_PASSWORD})
    assert refused.status_code == 401
    login = api_client.post("/api/v1/auth/token", {"email": admin_user.email, "password": DEFAULT_PASSWORD})
    assert login.status_code == 200
    tokens = login.json()
    refreshed = api_client.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]})
    assert refreshed.status_code == 200
    secrets += [tokens["access"], tokens["refresh"], refreshed.json()["access"]]

    admin = client_for_user(admin_user)
    created = admin.post("/api/v1/settings/api-keys", {"name": "edge-agent-prod", "scopes": ["ingest", "agent"]})
    assert created.status_code == 201
    key = created.json()["key"]
    secrets.append(key)

    reading = {"machine": machine.external_id, "sensor": sensor.key, "ts": timezone.now().isoformat(), "value": 1.5}
    assert client_for_key(key).post("/api/v1/ingest", {"readings": [reading]}, format="json").status_code == 202
    agent = api_client.get("/api/v1/agent/heartbeat", HTTP_X_API_KEY=key)
    assert agent.status_code == 200
    assert client_for_key(key).get("/api/v1/settings/api-keys").status_code == 403  # a user-only endpoint
    assert admin.delete(f"/api/v1/settings/api-keys/{created.json()['id']}").status_code == 204
    assert client_for_key(key).get("/api/v1/agent/heartbeat").status_code == 401  # revoked

    new_user = {"email": "op@acme.test", "password": NEW_USER_PASSWORD, "full_name": "Op Erator", "role": "operator"}
    assert admin.post("/api/v1/users", new_user).status_code == 201

    ai = {
        "ai_provider": "custom",
        "custom_ai_url": "http://192.168.1.50:11434",  # saved only: nothing connects to it here
        "custom_ai_model": "llama3",
        "custom_ai_api_key": AI_SERVER_KEY,
    }
    ai_response = admin.patch("/api/v1/settings/ai", ai)
    assert ai_response.status_code == 200
    assert AI_SERVER_KEY not in ai_response.content.decode()

    wrong = admin.post(
        "/api/v1/settings/change-password", {"current_password": WRONG_PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert wrong.status_code == 400
    changed = admin.post(
        "/api/v1/settings/change-password", {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert changed.status_code == 200
    secrets += [changed.json()["access"], changed.json()["refresh"]]
    assert admin.get("/api/v1/settings/profile").status_code == 401  # the old token ended
    return secrets


def fragments(secret: str) -> list[str]:
    """The secret, and the parts of it that are secret on their own."""
    parts = [secret]
    if secret.startswith("hlts_"):
        parts.append(secret[12:])  # everything after the displayable prefix
    if secret.count(".") == 2:
        parts.append(secret.rsplit(".", 1)[1])  # a JWT's signature
    return parts


class TestNoSecretsInLogs:
    def test_main_flows_log_no_secret(self, api_client, admin_user, telemetry_objects):
        with all_logs_at_debug() as logs:
            secrets = run_main_flows(api_client, admin_user, telemetry_objects)
        texts = list(logs.texts())

        # The capture is real: SQL (with the key's digest as a parameter) and our own logs were seen.
        key = next(s for s in secrets if s.startswith("hlts_"))
        assert any(r.name == "django.db.backends" for r in logs.records)
        assert any(digest(key) in text for text in texts)
        assert any(r.name == "audit.services" for r in logs.records)

        for secret in secrets:
            for fragment in fragments(secret):
                leaks = [text[:300] for text in texts if fragment in text]
                assert not leaks, f"a secret ({fragment[:8]}…) appears in the logs: {leaks}"

    def test_the_capture_would_see_a_leak(self, api_client, admin_user, telemetry_objects):
        # Guards the harness: a secret logged at DEBUG by any logger, new or old, is found.
        with all_logs_at_debug() as logs:
            logging.getLogger("some.new.module").debug("oops %s", "hlts_leaked")
            logging.getLogger("django.request").debug("password=%s", DEFAULT_PASSWORD)
        texts = list(logs.texts())
        assert any("hlts_leaked" in text for text in texts)
        assert any(DEFAULT_PASSWORD in text for text in texts)
