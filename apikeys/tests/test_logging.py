"""No secret in any log line while keys are created, used, refused and revoked."""

import logging
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from haltless.testing import key_header_client

pytestmark = [pytest.mark.django_db, pytest.mark.urls("apikeys.tests.urls")]
LOGGERS = ["", "django", "django.request", "django.server", "django.db.backends", "django.security"]


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record):
        self.records.append(record)

    def text(self) -> str:
        lines = []
        for record in self.records:
            lines.append(self.format(record))  # includes exception text, if any
            lines.append(repr(record.args))
        return "\n".join(lines)


@pytest.fixture
def all_logs():
    """Every record of every logger at DEBUG, SQL included (forced debug cursor)."""
    handler = _Capture()
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    forced = connection.force_debug_cursor
    connection.force_debug_cursor = True
    yield handler
    connection.force_debug_cursor = forced
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(handler)
        logging.getLogger(name).setLevel(saved[name])


def test_no_secret_is_logged_in_a_keys_life(all_logs, admin_client, tenant, client):
    from users.models import User

    secrets = []
    created = admin_client.post("/api/v1/settings/api-keys", {"name": "edge", "scopes": "edge_agent"})
    secrets.append(created.json()["key"])
    out = StringIO()
    call_command("issue_api_key", "--tenant", str(tenant.id), "--name", "cli", "--scopes", "read_only", stdout=out)
    secrets.append(out.getvalue().strip())
    staff = User.objects.create_superuser("staff@haltless.test", "Staff-Password-42!")
    client.force_login(staff)
    page = client.post(
        "/admin/apikeys/apikey/add/", {"tenant": str(tenant.pk), "name": "admin", "scopes": ["agent"]}, follow=True
    )
    secrets.append(next(s for s in page.content.decode().split('"') if s.startswith("hlts_")))

    for secret in secrets:
        for header in ("bearer", "x-api-key"):
            agent = key_header_client(secret, header)
            agent.get("/api/v1/_probe/agent")  # allowed, or 403 for the read_only key
            agent.get("/api/v1/_probe/machines")  # 403 for the edge keys
            agent.get("/api/v1/settings/profile")  # 403: user login needed
            key_header_client(secret[:-1] + "x", header).get("/api/v1/_probe/agent")  # 401 malformed
    listed = admin_client.get("/api/v1/settings/api-keys").json()
    for item in listed:
        admin_client.delete(f"/api/v1/settings/api-keys/{item['id']}")
    for secret in secrets:
        assert key_header_client(secret, "bearer").get("/api/v1/_probe/agent").status_code == 401  # revoked

    logged = all_logs.text()
    # The capture really saw the traffic: SQL, refused requests and audit lines.
    assert "SELECT" in logged and "Forbidden" in logged and "Unauthorized" in logged and "api_key.revoke" in logged
    assert len(secrets) == 3
    for secret in secrets:
        assert secret not in logged
        assert secret[12:] not in logged  # not even the part after the displayed prefix
