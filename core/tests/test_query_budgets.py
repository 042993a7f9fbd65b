"""Query budgets: the exact number of SQL queries of a typical call of every endpoint.

Each call works on several rows (users, keys, machines, sensors, runs), so a
query per row (an N+1) or a lost select_related/prefetch_related changes the
count and fails CI. Calls made with an API key are measured after one warm-up
call, in the steady state where `last_used_at` was written less than a minute
ago (so authentication is the single indexed lookup). Transaction statements
(SAVEPOINT / RELEASE) count as queries.

When a count changes on purpose, change its budget here and say why.
"""

from datetime import UTC, datetime, timedelta

import pytest

from haltless.testing import client_for_key
from retention.tests.factories import RetentionRunFactory
from telemetry.models import SensorReading
from telemetry.tests.factories import MachineFactory, SensorFactory
from users.models import Role
from users.tests.factories import DEFAULT_PASSWORD, UserFactory
from users.tokens import token_pair_for

ROWS = 5  # rows of each kind a typical call works on
KINDS = ["temperature", "pressure", "vibration", "current", "speed", "other"]


@pytest.fixture
def budget(django_assert_num_queries):
    """`with budget(n):` the block runs exactly n queries."""
    return django_assert_num_queries


@pytest.fixture
def colleagues(tenant):
    """Users of the admin's tenant, of every role."""
    roles = [Role.ADMIN, Role.OPERATOR, Role.VIEWER]
    return [
        UserFactory(tenant=tenant, role=roles[n % len(roles)], email=f"colleague{n}@acme.test") for n in range(ROWS)
    ]


class TestAuthBudgets:
    def test_token_obtain(self, api_client, admin_user, budget):
        # Both login throttle counters in one upsert, the user by email, the attempt
        # given back (one update), then last_login written.
        with budget(4):
            response = api_client.post(
                "/api/v1/auth/token", {"email": admin_user.email, "password": DEFAULT_PASSWORD}, format="json"
            )
        assert response.status_code == 200
        assert set(response.json()) == {"access", "refresh"}

    def test_token_refresh(self, api_client, admin_user, budget):
        refresh = token_pair_for(admin_user)["refresh"]
        with budget(1):
            response = api_client.post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json")
        assert response.status_code == 200
        assert set(response.json()) == {"access"}


class TestUserBudgets:
    def test_user_list(self, admin_client, colleagues, budget):
        # The caller (JWT), then the tenant's users in one query.
        with budget(2):
            response = admin_client.get("/api/v1/users")
        assert response.status_code == 200
        assert len(response.json()) == ROWS + 1

    def test_user_create(self, admin_client, colleagues, budget):
        # Caller, savepoint, email taken?, savepoint, insert, release, audit, release.
        with budget(8):
            response = admin_client.post(
                "/api/v1/users",
                {"email": "new@acme.test", "password": "TempP@ss123!x", "full_name": "New One", "role": "operator"},
                format="json",
            )
        assert response.status_code == 201, response.json()
        assert response.json()["email"] == "new@acme.test"

    def test_user_role_change(self, admin_client, colleagues, budget):
        target = colleagues[1]
        # Caller, target; savepoint, other active admins, target locked again, update, audit, release.
        with budget(8):
            response = admin_client.put(f"/api/v1/users/{target.pk}/role", {"role": "viewer"}, format="json")
        assert response.status_code == 200
        assert response.json()["role"] == "viewer"

    def test_user_deactivate(self, admin_client, colleagues, budget):
        target = colleagues[1]
        # As for a role change: the last-admin check, then one update of is_active and token_version.
        with budget(8):
            response = admin_client.delete(f"/api/v1/users/{target.pk}")
        assert response.status_code == 204
        target.refresh_from_db()
        assert target.is_active is False

    def test_profile_read(self, admin_client, admin_user, budget):
        with budget(1):
            response = admin_client.get("/api/v1/settings/profile")
        assert response.status_code == 200
        assert response.json()["email"] == admin_user.email

    def test_profile_update(self, admin_client, budget):
        # Caller; savepoint, savepoint, update, release, audit, release.
        with budget(7):
            response = admin_client.patch("/api/v1/settings/profile", {"full_name": "Jane Smith"}, format="json")
        assert response.status_code == 200
        assert response.json()["full_name"] == "Jane Smith"

    def test_password_change(self, admin_client, budget):
        # Caller; the current-password check counted (upsert) and given back (update); the change.
        with budget(7):
            response = admin_client.post(
                "/api/v1/settings/change-password",
                {"current_password": DEFAULT_PASSWORD, "new_password": "NewSecureP@ss123!"},
                format="json",
            )
        assert response.status_code == 200
        assert set(response.json()) == {"access", "refresh"}


@pytest.fixture
def tenant_keys(make_api_key):
    return [make_api_key(name=f"agent {n}") for n in range(ROWS)]


class TestApiKeyBudgets:
    def test_key_list(self, admin_client, tenant_keys, budget):
        # Caller, the tenant's key policy (for policy_violations, once per list), the tenant's active keys.
        with budget(3):
            response = admin_client.get("/api/v1/settings/api-keys")
        assert response.status_code == 200
        assert len(response.json()) == ROWS

    def test_key_create(self, admin_client, tenant_keys, budget):
        # Caller, the tenant's key policy; savepoint, insert, audit, release. (The caller's tenant is
        # no longer loaded: the service scopes by the Caller's tenant id, and reads the tier only for
        # a rate limit.)
        with budget(6):
            response = admin_client.post(
                "/api/v1/settings/api-keys", {"name": "edge-agent-prod", "scopes": "edge_agent"}, format="json"
            )
        assert response.status_code == 201
        assert response.json()["scopes"] == ["ingest", "agent"]

    def test_key_revoke(self, admin_client, tenant_keys, budget):
        # Caller, the key (tenant-scoped); savepoint, conditional update, audit, release.
        with budget(6):
            response = admin_client.delete(f"/api/v1/settings/api-keys/{tenant_keys[0].api_key.pk}")
        assert response.status_code == 204
        tenant_keys[0].api_key.refresh_from_db()
        assert tenant_keys[0].api_key.revoked_at is not None


class TestAuditLogBudgets:
    def test_audit_log(self, admin_client, tenant_keys, budget):
        # Creating the keys wrote one event each. Caller, the page's count, the page.
        with budget(3):
            response = admin_client.get("/api/v1/settings/audit-log")
        assert response.status_code == 200
        assert response.json()["count"] == ROWS


class TestRetentionBudgets:
    @pytest.fixture
    def past_runs(self, tenant, admin_user):
        return [RetentionRunFactory(tenant=tenant, requested_by=admin_user) for _ in range(ROWS)]

    def test_run_request(self, admin_client, past_runs, budget):
        # The request only: the run is published from inside the transaction that creates it.
        # Caller; savepoint (the request's transaction), active run?; savepoint, insert,
        # audit, release; release; the run's status re-read. No tenant: the Caller has its id.
        with budget(9):
            response = admin_client.post("/api/v1/settings/admin/retention/run", {}, format="json")
        assert response.status_code == 202
        assert response.json()["status"] == "queued"

    def test_run_list(self, admin_client, past_runs, budget):
        # Caller, then the tenant's runs.
        with budget(2):
            response = admin_client.get("/api/v1/settings/admin/retention/runs")
        assert response.status_code == 200
        assert len(response.json()) == ROWS

    def test_run_detail(self, admin_client, past_runs, budget):
        # Caller, then the run (tenant-scoped).
        with budget(2):
            response = admin_client.get(f"/api/v1/settings/admin/retention/runs/{past_runs[0].pk}")
        assert response.status_code == 200
        assert response.json()["id"] == str(past_runs[0].pk)


ROLE_PERMISSIONS = {
    "operator": {
        "settings": ["tenant", "notifications", "units"],
        "nav": ["dashboard", "machines", "alerts", "maintenance", "work-orders"],
    },
    # The docs' defaults, except that viewers also see reports: a real change.
    "viewer": {"settings": ["tenant", "units"], "nav": ["dashboard", "machines", "alerts", "reports"]},
}
DASHBOARD_PRESET = {
    "role": "operator",
    "widgets": [
        {"id": "stat-cards", "labelKey": "dashboard.stats", "visible": True, "size": "full"},
        {"id": "at-risk-machines", "labelKey": "dashboard.atRisk", "visible": True, "size": "half"},
    ],
    "statMetrics": [{"metricId": "critical_count"}, {"metricId": "active_alerts"}],
}


class TestSettingsBudgets:
    def test_me(self, operator_client, budget):
        # Caller, tenant, the role's permissions, the caller's units.
        with budget(4):
            response = operator_client.get("/api/v1/me")
        assert response.status_code == 200
        assert response.json()["user"]["role"] == "operator"
        assert response.json()["units"]["temperature"] == "celsius"

    def test_role_permissions_read(self, viewer_client, budget):
        # Caller, the tenant's rows (defaults fill the gaps).
        with budget(2):
            response = viewer_client.get("/api/v1/settings/role-permissions")
        assert response.status_code == 200
        assert set(response.json()) == {"operator", "viewer"}

    def test_role_permissions_replace(self, admin_client, budget):
        # Caller; savepoint, rows locked, an insert per role, audit, release; the result.
        with budget(8):
            response = admin_client.put("/api/v1/settings/role-permissions", ROLE_PERMISSIONS, format="json")
        assert response.status_code == 200
        assert response.json() == ROLE_PERMISSIONS

    def test_ai_settings_read(self, operator_client, budget):
        # Caller, the tenant's row.
        with budget(2):
            response = operator_client.get("/api/v1/settings/ai")
        assert response.status_code == 200
        assert response.json()["ai_provider"] == "platform"

    def test_ai_settings_update(self, admin_client, budget):
        # Saving a host name resolves nothing and connects nowhere (only a probe does).
        changes = {
            "ai_provider": "custom",
            "custom_ai_url": "http://ollama.plant.test:11434",
            "custom_ai_model": "llama3",
        }
        # Caller; savepoint, row locked, insert, the tenant (for the audit's label), audit, release.
        with budget(7):
            response = admin_client.patch("/api/v1/settings/ai", changes, format="json")
        assert response.status_code == 200
        assert response.json() == {**changes, "custom_ai_api_key_set": False}

    def test_ai_models_of_the_platform(self, admin_client, budget):
        # Provider `platform`: the configured list, no probe and so no network.
        # Caller, the per-tenant probe throttle's counter (core.throttling), the tenant's AI settings.
        with budget(3):
            response = admin_client.get("/api/v1/settings/ai/models")
        assert response.status_code == 200
        assert "models" in response.json()

    def test_dashboard_presets_read(self, viewer_client, budget):
        # Caller, the tenant's presets (defaults fill the gaps).
        with budget(2):
            response = viewer_client.get("/api/v1/settings/dashboard-presets")
        assert response.status_code == 200
        assert {"admin", "operator", "viewer"} <= set(response.json())

    def test_dashboard_preset_save(self, admin_client, budget):
        # Caller; savepoint, row locked, insert, the tenant (for the audit's label), audit, release.
        with budget(7):
            response = admin_client.put("/api/v1/settings/dashboard-presets", DASHBOARD_PRESET, format="json")
        assert response.status_code == 200
        assert [w["id"] for w in response.json()["widgets"]] == ["stat-cards", "at-risk-machines"]

    def test_units_read(self, viewer_client, budget):
        # Caller, the caller's row.
        with budget(2):
            response = viewer_client.get("/api/v1/settings/units")
        assert response.status_code == 200
        assert response.json()["temperature"] == "celsius"

    def test_units_update(self, viewer_client, budget):
        # Caller; savepoint, row locked, insert, audit, release.
        with budget(6):
            response = viewer_client.patch(
                "/api/v1/settings/units", {"temperature": "fahrenheit", "pressure": "bar"}, format="json"
            )
        assert response.status_code == 200
        assert response.json()["temperature"] == "fahrenheit"


@pytest.fixture
def plant(tenant):
    """ROWS machines of the tenant, each with one sensor of every kind and a few readings per sensor."""
    machines = [MachineFactory(tenant=tenant, external_id=f"press-{n}") for n in range(ROWS)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for machine in machines:
        for kind in KINDS:
            sensor = SensorFactory(machine=machine, key=f"{kind}_1", kind=kind)
            SensorReading.objects.bulk_create(
                SensorReading(tenant_id=tenant.pk, sensor=sensor, ts=start + timedelta(minutes=m), value=float(m))
                for m in range(ROWS)
            )
    return machines


def key_client(make_api_key, scopes):
    """A client with a fresh key, after one call that writes its `last_used_at` (the steady state)."""
    client = client_for_key(make_api_key(scopes=scopes, name=f"budget {scopes}").secret)
    client.get("/api/v1/agent/heartbeat")
    return client


class TestTelemetryBudgets:
    @pytest.fixture
    def agent(self, make_api_key):
        return key_client(make_api_key, ["ingest", "agent"])

    @pytest.fixture
    def reader(self, make_api_key):
        return key_client(make_api_key, ["read:machines", "read:sensors", "agent"])

    @pytest.mark.parametrize("size", [1, 500])
    def test_ingest(self, agent, plant, budget, size):
        # The same count for 1 and 500 readings: key, the batch's machines with their sensors, then
        # the writing transaction (SAVEPOINT here, inside the test's transaction; BEGIN in production):
        # one lock of the batch's sensors (it replaces the readings' foreign-key check of every row),
        # one insert (a COPY on PostgreSQL), RELEASE.
        start = datetime(2026, 2, 1, tzinfo=UTC)
        sensors = ["temperature_1", "pressure_1", "vibration_1", "current_1", "speed_1"]
        readings = [
            {
                "machine": plant[n % ROWS].external_id,
                "sensor": sensors[n % len(sensors)],
                "ts": (start + timedelta(seconds=n)).isoformat(),
                "value": n,
            }
            for n in range(size)
        ]
        with budget(6):
            response = agent.post("/api/v1/ingest", {"readings": readings}, format="json")
        assert response.status_code == 202
        assert response.json() == {"accepted": size}

    def test_heartbeat(self, agent, budget):
        # Key, heartbeat insert.
        with budget(2):
            response = agent.get("/api/v1/agent/heartbeat")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"

    def test_machine_list(self, reader, plant, budget):
        # Key, count, page, the page's sensors (one prefetch).
        with budget(4):
            response = reader.get("/api/v1/machines")
        assert response.status_code == 200
        assert response.json()["count"] == ROWS
        assert all(len(m["sensors"]) == len(KINDS) for m in response.json()["results"])

    def test_machine_detail(self, reader, plant, budget):
        # Key, machine, its sensors.
        with budget(3):
            response = reader.get(f"/api/v1/machines/{plant[0].pk}")
        assert response.status_code == 200
        assert response.json()["external_id"] == plant[0].external_id

    def test_readings_by_key(self, reader, plant, budget):
        # Key, machine, its sensors, the page.
        with budget(4):
            response = reader.get("/api/v1/sensor-data/readings?machine=press-0&sensor=temperature_1")
        assert response.status_code == 200
        assert len(response.json()["results"]) == ROWS

    def test_readings_by_user(self, operator_client, plant, budget):
        # A user's units cost one query more than a key's canonical units.
        with budget(5):
            response = operator_client.get("/api/v1/sensor-data/readings?machine=press-0&sensor=temperature_1")
        assert response.status_code == 200
        assert response.json()["results"][0]["unit"] == "celsius"

    def test_latest(self, reader, plant, budget):
        # Key, machine, its sensors, the latest reading of each (one query, subqueries per sensor).
        with budget(4):
            response = reader.get("/api/v1/sensor-data/latest?machine=press-0")
        assert response.status_code == 200
        assert len(response.json()) == len(KINDS)

    def test_aggregate(self, reader, plant, budget):
        # Key, machine, its sensors, the buckets (grouped in the database).
        with budget(4):
            response = reader.get(
                "/api/v1/sensor-data/aggregate?machine=press-0&sensor=temperature_1&bucket=15m"
                "&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"
            )
        assert response.status_code == 200
        assert response.json()["buckets"][0]["count"] == ROWS

    def test_aggregate_hourly_past_the_raw_window(self, reader, plant, budget, settings):
        from telemetry.rollups import rollups_build

        rollups_build()  # what the beat job has done by then
        settings.CELERY_TASK_ALWAYS_EAGER = True  # the embedded mode: the costlier of the two
        # Key, machine, its sensors, the tenant with its retention policy, the rollup
        # cursor and the highest reading id (embedded mode: are the rollups current?),
        # the rollup buckets; the range is all past the raw cutoff, so no raw query.
        with budget(7):
            response = reader.get(
                "/api/v1/sensor-data/aggregate?machine=press-0&sensor=temperature_1&bucket=1h"
                "&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"
            )
        assert response.status_code == 200
        assert response.json()["buckets"][0]["count"] == ROWS
        assert response.json()["buckets"][0]["source"] == "rollup"
