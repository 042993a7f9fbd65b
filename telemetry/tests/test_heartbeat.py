from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.permissions import API_KEY_REQUIRED, missing_scope_message
from telemetry.models import AgentHeartbeat

URL = "/api/v1/agent/heartbeat"
pytestmark = pytest.mark.django_db


class TestHeartbeat:
    def test_answers_ok_with_server_time_tenant_and_key(self, key_client, api_key, tenant):
        before = timezone.now()
        response = key_client.get(URL)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"status", "server_time", "tenant_id", "key_id", "limits", "backoff_seconds"}
        assert body["status"] == "ok"
        # The tier's caps (the fixture tenant is on the professional tier), no backoff.
        assert body["limits"] == {"requests_per_minute": 12_000, "readings_per_minute": 2_000_000}
        assert body["backoff_seconds"] == 0
        assert body["tenant_id"] == str(tenant.id)
        assert body["key_id"] == str(api_key.api_key.id)
        server_time = parse_datetime(body["server_time"])
        assert server_time.utcoffset() == timedelta(0)
        assert before <= server_time <= timezone.now()

    def test_records_the_heartbeat_with_what_the_agent_says(self, key_client, api_key, tenant):
        response = key_client.get(
            URL, HTTP_X_AGENT_VERSION=" 2.4.1 ", HTTP_X_AGENT_HOSTNAME="edge-01.plant", REMOTE_ADDR="10.0.0.7"
        )
        assert response.status_code == 200
        heartbeat = AgentHeartbeat.objects.get()
        assert heartbeat.api_key_id == api_key.api_key.id
        assert heartbeat.tenant_id == tenant.id
        assert heartbeat.agent_version == "2.4.1"
        assert heartbeat.hostname == "edge-01.plant"
        assert heartbeat.client_ip == "10.0.0.7"
        assert heartbeat.received_at == parse_datetime(response.json()["server_time"])

    def test_headers_are_optional_and_overlong_values_are_cut(self, key_client):
        assert key_client.get(URL).status_code == 200
        assert key_client.get(URL, HTTP_X_AGENT_VERSION="v" * 500).status_code == 200
        first, second = AgentHeartbeat.objects.order_by("id")
        assert (first.agent_version, first.hostname) == ("", "")
        assert second.agent_version == "v" * 64

    def test_trailing_slash(self, key_client):
        response = key_client.get(URL + "/")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"


class TestHeartbeatAccess:
    def test_jwt_users_are_refused(self, admin_client):
        response = admin_client.get(URL)
        assert response.status_code == 403
        assert response.json() == {"detail": API_KEY_REQUIRED}
        assert not AgentHeartbeat.objects.exists()

    def test_a_key_without_the_agent_scope_is_refused(self, reader_client):
        response = reader_client.get(URL)
        assert response.status_code == 403
        assert response.json() == {"detail": missing_scope_message("agent")}
        assert not AgentHeartbeat.objects.exists()

    def test_an_ingest_only_key_is_refused(self, make_api_key):
        from haltless.testing import client_for_key

        response = client_for_key(make_api_key(scopes=["ingest"]).secret).get(URL)
        assert response.status_code == 403
        assert response.json() == {"detail": missing_scope_message("agent")}

    def test_no_credentials_is_401(self, api_client):
        response = api_client.get(URL)
        assert response.status_code == 401
        assert set(response.json()) == {"detail"}

    def test_post_is_405(self, key_client):
        response = key_client.post(URL, {}, format="json")
        assert response.status_code == 405
        assert response.json() == {"detail": 'Method "POST" not allowed.'}


@pytest.mark.postgres
class TestHeartbeatCommit:
    """A heartbeat commits asynchronously on its own; inside a caller's transaction it does not."""

    @pytest.mark.django_db(transaction=True)
    def test_a_heartbeat_request_commits_without_waiting_for_the_wal_flush(self, key_client, api_key):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        key_client.get(URL)  # the key's last_used_at write, once a minute
        with CaptureQueriesContext(connection) as queries:
            response = key_client.get(URL, REMOTE_ADDR="10.0.0.7")
        assert response.status_code == 200
        insert = next(q["sql"] for q in queries.captured_queries if "telemetry_agentheartbeat" in q["sql"])
        assert insert.startswith("WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true))")
        heartbeat = AgentHeartbeat.objects.order_by("-received_at").first()
        assert heartbeat.client_ip == "10.0.0.7"
        assert response.json()["server_time"] == heartbeat.received_at.isoformat().replace("+00:00", "Z")
        with connection.cursor() as cursor:  # the setting was the INSERT's transaction's only
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"

    def test_inside_a_transaction_the_callers_commit_stays_durable(self, api_key, tenant):
        from django.db import connection, transaction

        from apikeys.authentication import ApiKeyPrincipal
        from core.caller import Caller
        from telemetry.services import heartbeat_record

        with transaction.atomic():
            heartbeat_record(by=Caller.acting(ApiKeyPrincipal(api_key.api_key)))
            with connection.cursor() as cursor:
                cursor.execute("SHOW synchronous_commit")
                assert cursor.fetchone()[0] == "on"
        assert AgentHeartbeat.objects.count() == 1
