"""Who may call what: one reviewed table, one cell per endpoint, method and caller.

Every endpoint under /api/v1/ is found by walking the URL configuration; an
endpoint or method without a row fails `TestTableCoversTheApi`, so a new
endpoint cannot ship without someone deciding who may call it. A row whose
endpoint is gone fails too.

Each cell is the status that caller gets for a sensible request: the body is a
valid one, so an allowed caller sees the real success status (never a 400 from
an empty body). Objects in paths belong to `tenant`; the other tenant's admin
therefore gets 404 for them. Beyond the status, every cell checks the error
body (the exact 401/403 details the contract fixes) and the audit log: a
refused request leaves no audit event, a read leaves none, and a user's
successful write leaves the row's audit action, by that user.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from core.caller import Caller
from core.permissions import ADMIN_REQUIRED, API_KEY_REQUIRED, USER_LOGIN_REQUIRED, missing_scope_message
from haltless.testing import client_for_key, client_for_user
from users.tests.factories import DEFAULT_PASSWORD

API_PREFIX = "/api/v1"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# The columns of the table, in order.
CALLERS = (
    "anonymous",
    "viewer",
    "operator",
    "admin",
    "other_admin",  # the other tenant's admin
    "key:ingest",
    "key:agent",
    "key:read:machines",
    "key:read:sensors",
    "key:edge_agent",
    "key:read_only",
    "key:write:machines",  # provisioning (an MES or ERP sync): write:machines alone
    "key:revoked",  # an edge_agent key, revoked
    "key:expired",  # an edge_agent key, expired
)
USER_CALLERS = {"viewer", "operator", "admin", "other_admin"}
KEY_SCOPES = {
    "key:ingest": ["ingest"],
    "key:agent": ["agent"],
    "key:read:machines": ["read:machines"],
    "key:read:sensors": ["read:sensors"],
    "key:edge_agent": "edge_agent",
    "key:read_only": "read_only",
    "key:write:machines": ["write:machines"],
    "key:revoked": "edge_agent",
    "key:expired": "edge_agent",
}

# What the `audit` column of a write row says when the write is not a change
# an admin or user makes (logging in, an agent posting data).
NOT_AUDITED = "not audited"

NEW_PASSWORD = "Matrix-Fresh-Secret-2031"


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # as documented, with {placeholders} for path parameters
    statuses: tuple[int, ...]  # one per caller, in CALLERS order
    body: Callable[["World"], Any] | dict | None = None
    query: Callable[["World"], dict] | dict | None = None
    scope: str | None = None  # the scope the endpoint declares; None for user-only
    write_scope: str | None = None  # the scope its writes need, when stronger (required_write_scope)
    key_only: bool = False  # allow_user_login = False
    audit: str | None = None  # the action a user's successful write records, or NOT_AUDITED
    path_objects: dict[str, str] = field(default_factory=dict)  # path parameter -> World attribute
    deviations: dict[str, str] = field(default_factory=dict)  # caller -> why the cell is a known bug
    # Endpoints with a credential of their own (enrollment token, GitHub's signature): the one
    # detail every refusal gets, whatever else the caller sent.
    refusal: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    def status_for(self, caller: str) -> int:
        return self.statuses[CALLERS.index(caller)]


def row(method: str, path: str, *statuses: int, **options) -> Row:
    assert len(statuses) == len(CALLERS), f"{method} {path}: {len(statuses)} cells for {len(CALLERS)} callers"
    return Row(method, path, statuses, **options)


# --- Request bodies and queries that an allowed caller would succeed with --------------


def _login_body(world: "World") -> dict:
    return {"email": world.admin.email, "password": DEFAULT_PASSWORD}


def _refresh_body(world: "World") -> dict:
    from users.tokens import token_pair_for

    return {"refresh": token_pair_for(world.admin)["refresh"]}


def _ingest_body(world: "World") -> dict:
    reading = {"machine": world.machine.external_id, "sensor": world.sensor.key, "ts": timezone.now().isoformat()}
    return {"readings": [{**reading, "value": 21.5}]}


def _machine_query(world: "World") -> dict:
    return {"machine": world.machine.external_id}


def _sensor_query(world: "World") -> dict:
    return {"machine": world.machine.external_id, "sensor": world.sensor.key}


def _aggregate_query(world: "World") -> dict:
    return {**_sensor_query(world), "bucket": "1h"}


ROLE_PERMISSIONS = {
    "operator": {
        "settings": ["tenant", "notifications", "units"],
        "nav": ["dashboard", "machines", "alerts", "maintenance", "work-orders"],
    },
    # The documented default plus `reports`, so that the PUT really changes something.
    "viewer": {"settings": ["tenant", "units"], "nav": ["dashboard", "machines", "alerts", "reports"]},
}
# Saving a custom server makes no outbound request (only the models probe does).
AI_SETTINGS = {"ai_provider": "custom", "custom_ai_url": "http://192.168.1.50:11434", "custom_ai_model": "llama3"}
DASHBOARD_PRESET = {
    "role": "operator",
    "widgets": [
        {"id": "stat-cards", "labelKey": "dashboard.stats", "visible": True, "size": "full"},
        {"id": "at-risk-machines", "labelKey": "dashboard.atRisk", "visible": True, "size": "half"},
    ],
    "statMetrics": [{"metricId": "critical_count"}, {"metricId": "active_alerts"}],
}
NEW_MACHINE = {
    "external_id": "matrix-press",
    "name": "Matrix press",
    "location": "Hall M",
    "sensors": [{"key": "bearing_temp", "kind": "temperature"}],
}
NEW_USER = {"email": "new.person@acme.test", "password": "Onboard-Secret-2031", "full_name": "New Person"}

# Deviations from the contract that the owning app has been told about. A cell listed
# here is an expected failure (strict: the day it is fixed, the table must be updated).

# fmt: off
# Columns: anonymous, viewer, operator, admin, other tenant's admin,
#          key ingest, agent, read:machines, read:sensors, edge_agent, read_only, write:machines,
#          revoked key, expired key
MATRIX: list[Row] = [
    # --- users: login, profile, password ------------------------------------------------------------
    # A live key is told the endpoint needs a user login; a revoked or expired one is the usual 401.
    row("POST", "/auth/token",                  200, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body=_login_body, audit=NOT_AUDITED),
    row("POST", "/auth/token/refresh",          200, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body=_refresh_body, audit=NOT_AUDITED),
    row("GET", "/settings/profile",             401, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("PATCH", "/settings/profile",           401, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body={"full_name": "Matrix Renamed"}, audit="user.profile_update"),
    row("POST", "/settings/change-password",    401, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD}, audit="user.password_change"),
    # --- users: management (admin) ------------------------------------------------------------------
    row("GET", "/users",                        401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("POST", "/users",                       401, 403, 403, 201, 201,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body={**NEW_USER, "role": "operator"}, audit="user.create"),
    row("GET", "/users/{user_id}",              401, 403, 403, 200, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("DELETE", "/users/{user_id}",           401, 403, 403, 204, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        audit="user.deactivate"),
    row("PATCH", "/users/{user_id}",            401, 403, 403, 200, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body={"full_name": "Matrix Name"}, audit="user.update"),
    row("POST", "/users/{user_id}/reactivate",  401, 403, 403, 200, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        path_objects={"user_id": "inactive_user"}, audit="user.reactivate"),
    row("PUT", "/users/{user_id}/role",         401, 403, 403, 200, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body={"role": "operator"}, audit="user.role_change"),
    # --- API keys -----------------------------------------------------------------------------------
    row("GET", "/settings/api-keys",            401, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("POST", "/settings/api-keys",           401, 403, 403, 201, 201,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body={"name": "matrix key", "scopes": "read_only"}, audit="api_key.create"),
    row("DELETE", "/settings/api-keys/{key_id}",
                                                401, 403, 403, 204, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        audit="api_key.revoke"),
    row("GET", "/settings/api-keys/{key_id}",   401, 200, 200, 200, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("PATCH", "/settings/api-keys/{key_id}", 401, 403, 403, 200, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body={"name": "matrix renamed", "allowed_cidrs": ["10.20.0.0/16"], "disabled": True}, audit="api_key.update"),
    row("GET", "/settings/api-keys/{key_id}/observed-ips",
                                                401, 403, 403, 200, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("POST", "/settings/api-keys/{key_id}/rotate",
                                                401, 403, 403, 201, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body={"overlap_seconds": 60}, audit="api_key.rotate"),
    # The other tenant's admin: the id is ignored, nothing is revoked, and the answer is 200 {"revoked": 0}.
    row("POST", "/settings/api-keys/revoke",    401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body=lambda world: {"ids": [str(world.target_key.pk)]}, audit="api_key.bulk_revoke"),
    row("GET", "/settings/api-key-policy",      401, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("PUT", "/settings/api-key-policy",      401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body={"require_expiry": True, "notify_days_before_expiry": [14, 3]}, audit="api_key_policy.update"),
    row("POST", "/agent/key/rotate",            401, 403, 403, 403, 403,  403, 201, 403, 403, 201, 403, 403, 401, 401,
        body={"overlap_seconds": 3600}, scope="agent", key_only=True, audit="api_key.self_rotate"),
    row("GET", "/settings/webhook-deliveries",  401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("POST", "/settings/webhook-deliveries/{delivery_id}/redeliver",
                                                401, 403, 403, 202, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        audit="webhook_delivery.redeliver"),
    row("GET", "/agent/whoami",                 401, 403, 403, 403, 403,  200, 200, 200, 200, 200, 200, 200, 401, 401,
        scope="*", key_only=True),
    # --- enrollment and leaks -------------------------------------------------------------------------
    row("GET", "/settings/enrollment-tokens",   401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("POST", "/settings/enrollment-tokens",  401, 403, 403, 201, 201,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body=lambda world: {"name": "matrix", "expires_at": (timezone.now() + timedelta(days=1)).isoformat()},
        audit="enrollment_token.create"),
    row("DELETE", "/settings/enrollment-tokens/{token_id}",
                                                401, 403, 403, 204, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        audit="enrollment_token.delete"),
    # Only an enrollment token opens it; nobody in the table holds one (see apikeys/tests/test_enrollment.py).
    row("POST", "/agent/enroll",                401, 401, 401, 401, 401,  401, 401, 401, 401, 401, 401, 401, 401, 401,
        body={"hostname": "matrix-gw"}, audit="api_key.enroll", refusal="Invalid enrollment token."),
    # No authentication at all: every caller is the same anonymous finder; the answer tells nothing.
    row("POST", "/public/credentials/revoke",   202, 202, 202, 202, 202,  202, 202, 202, 202, 202, 202, 202, 202, 202,
        body={"credentials": ["hlts_not-a-real-key"]}, audit=NOT_AUDITED),
    row("POST", "/public/secret-scanning/github",
                                                401, 401, 401, 401, 401,  401, 401, 401, 401, 401, 401, 401, 401, 401,
        body=[{"token": "hlts_x", "type": "haltless_api_key"}], audit="api_key.exposed",
        refusal="Missing or invalid GitHub signature."),
    # --- tenant settings ----------------------------------------------------------------------------
    row("GET", "/me",                           401, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("GET", "/settings/role-permissions",    401, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("PUT", "/settings/role-permissions",    401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body=ROLE_PERMISSIONS, audit="settings.role_permissions.update"),
    row("GET", "/settings/ai",                  401, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("PATCH", "/settings/ai",                401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body=AI_SETTINGS, audit="settings.ai.update"),
    # Provider `platform` (the default): lists the configured models, no outbound request.
    row("GET", "/settings/ai/models",           401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("GET", "/settings/dashboard-presets",   401, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("PUT", "/settings/dashboard-presets",   401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body=DASHBOARD_PRESET, audit="settings.dashboard_preset.update"),
    row("GET", "/settings/units",               401, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("PATCH", "/settings/units",             401, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body={"temperature": "fahrenheit"}, audit="settings.units.update"),
    # --- telemetry: API-key scopes ------------------------------------------------------------------
    row("POST", "/ingest",                      401, 403, 403, 403, 403,  202, 403, 403, 403, 202, 403, 403, 401, 401,
        body=_ingest_body, scope="ingest", key_only=True, audit=NOT_AUDITED),
    row("GET", "/agent/heartbeat",              401, 403, 403, 403, 403,  403, 200, 403, 403, 200, 403, 403, 401, 401,
        scope="agent", key_only=True),
    row("GET", "/machines",                     401, 200, 200, 200, 200,  403, 403, 200, 403, 403, 200, 403, 401, 401,
        scope="read:machines", write_scope="write:machines"),
    row("GET", "/machines/{pk}",                401, 200, 200, 200, 404,  403, 403, 200, 403, 403, 200, 403, 401, 401,
        scope="read:machines", write_scope="write:machines", path_objects={"pk": "machine"}),
    # --- telemetry: provisioning (admin, or a key with write:machines; writing needs no read scope) ----
    row("POST", "/machines",                    401, 403, 403, 201, 201,  403, 403, 403, 403, 403, 403, 201, 401, 401,
        body=NEW_MACHINE, scope="read:machines", write_scope="write:machines", audit="machine.create"),
    row("PATCH", "/machines/{pk}",              401, 403, 403, 200, 404,  403, 403, 403, 403, 403, 403, 200, 401, 401,
        body={"name": "Matrix renamed"}, scope="read:machines", write_scope="write:machines",
        path_objects={"pk": "machine"}, audit="machine.update"),
    row("DELETE", "/machines/{pk}",             401, 403, 403, 204, 404,  403, 403, 403, 403, 403, 403, 204, 401, 401,
        scope="read:machines", write_scope="write:machines", path_objects={"pk": "machine"}, audit="machine.delete"),
    row("POST", "/machines/{pk}/sensors",       401, 403, 403, 201, 404,  403, 403, 403, 403, 403, 403, 201, 401, 401,
        body={"key": "matrix_pressure", "kind": "pressure"}, scope="write:machines", path_objects={"pk": "machine"},
        audit="sensor.create"),
    row("DELETE", "/machines/{pk}/sensors/{key}",
                                                401, 403, 403, 204, 404,  403, 403, 403, 403, 403, 403, 204, 401, 401,
        scope="write:machines", path_objects={"pk": "machine", "key": "sensor_key"}, audit="sensor.delete"),
    row("GET", "/sensor-data/readings",         401, 200, 200, 200, 404,  403, 403, 403, 200, 403, 200, 403, 401, 401,
        query=_sensor_query, scope="read:sensors"),
    row("GET", "/sensor-data/latest",           401, 200, 200, 200, 404,  403, 403, 403, 200, 403, 200, 403, 401, 401,
        query=_machine_query, scope="read:sensors"),
    row("GET", "/sensor-data/aggregate",        401, 200, 200, 200, 404,  403, 403, 403, 200, 403, 200, 403, 401, 401,
        query=_aggregate_query, scope="read:sensors"),
    # --- retention (admin) --------------------------------------------------------------------------
    row("POST", "/settings/admin/retention/run",
                                                401, 403, 403, 202, 202,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        audit="retention.run_requested"),
    row("GET", "/settings/admin/retention/runs",
                                                401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("GET", "/settings/admin/retention/runs/{run_id}",
                                                401, 403, 403, 200, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("GET", "/settings/admin/retention/preview",
                                                401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("GET", "/settings/admin/retention/holds",
                                                401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("POST", "/settings/admin/retention/holds",
                                                401, 403, 403, 201, 201,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body={"reason": "Matrix case", "from": "2025-01-01T00:00:00Z"}, audit="retention_hold.create"),
    row("DELETE", "/settings/admin/retention/holds/{hold_id}",
                                                401, 403, 403, 204, 404,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        path_objects={"hold_id": "retention_hold"}, audit="retention_hold.release"),
    row("GET", "/settings/retention-policy",    401, 200, 200, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
    row("PUT", "/settings/retention-policy",    401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401,
        body={"readings_days": 30}, audit="retention_policy.update"),
    # --- audit log (admin) --------------------------------------------------------------------------
    row("GET", "/settings/audit-log",           401, 403, 403, 200, 200,  403, 403, 403, 403, 403, 403, 403, 401, 401),
]
# fmt: on
MATRIX_BY_KEY = {r.key: r for r in MATRIX}


# --- The URL configuration, enumerated --------------------------------------------------


def _template(route: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def _view_class(callback) -> type | None:
    return getattr(callback, "cls", None) or getattr(callback, "view_class", None)


def _methods(callback) -> list[str]:
    actions = getattr(callback, "actions", None)  # a ViewSet's method -> action map
    if actions:
        return sorted(m.upper() for m in actions if m.upper() in METHODS)
    view_class = _view_class(callback)
    if view_class is None:
        return ["GET"]  # a plain function view: assume the worst and demand a row
    allowed = {m.upper() for m in getattr(view_class, "http_method_names", [])}
    return [m for m in METHODS if m in allowed and hasattr(view_class, m.lower())]


def api_operations() -> dict[tuple[str, str], Any]:
    """Every (METHOD, path template) served under /api/v1/, mapped to its view callback."""
    operations: dict[tuple[str, str], Any] = {}

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and ("/" + route).startswith(API_PREFIX + "/"):
                path = _template("/" + route)[len(API_PREFIX) :]
                for method in _methods(pattern.callback):
                    operations[(method, path)] = pattern.callback

    walk(get_resolver().url_patterns, "")
    return operations


# --- The world every cell runs in ---------------------------------------------------------


class World:
    """Two tenants, their people and keys, and one object of `tenant` for each path parameter."""

    def __init__(self, tenant, other_tenant, admin_user, operator_user, viewer_user, other_tenant_admin, make_key):
        self.tenant, self.other_tenant = tenant, other_tenant
        self.admin, self.operator, self.viewer = admin_user, operator_user, viewer_user
        self.other_admin = other_tenant_admin
        self._make_key = make_key

    def user_for(self, caller: str):
        return {"viewer": self.viewer, "operator": self.operator, "admin": self.admin, "other_admin": self.other_admin}[
            caller
        ]

    def client_for(self, caller: str) -> APIClient:
        if caller == "anonymous":
            return APIClient()
        if caller in USER_CALLERS:
            return client_for_user(self.user_for(caller))
        issued = self._make_key(scopes=KEY_SCOPES[caller], name=caller)
        if caller == "key:revoked":
            from apikeys.services import api_key_revoke

            api_key_revoke(by=Caller.system(tenant_id=self.tenant.id), api_key=issued.api_key)
        elif caller == "key:expired":
            type(issued.api_key).objects.filter(pk=issued.api_key.pk).update(
                expires_at=timezone.now() - timedelta(minutes=1)
            )
        return client_for_key(issued.secret)

    # Objects named by path parameters, all of `tenant`.
    @cached_property
    def target_user(self):
        from users.tests.factories import UserFactory

        return UserFactory(tenant=self.tenant, email="target@acme.test")

    @cached_property
    def inactive_user(self):
        from users.tests.factories import UserFactory

        return UserFactory(tenant=self.tenant, email="inactive@acme.test", is_active=False)

    @cached_property
    def sensor_key(self) -> str:
        return self.sensor.key

    @cached_property
    def target_key(self):
        return self._make_key(scopes="read_only", name="target key").api_key

    @cached_property
    def machine(self):
        from telemetry.models import Machine

        return Machine.objects.create(tenant=self.tenant, external_id="press-01", name="Press 1")

    @cached_property
    def sensor(self):
        from telemetry.models import Sensor

        return Sensor.objects.create(machine=self.machine, key="bearing_temp", kind=Sensor.Kind.TEMPERATURE)

    def own_credential_client(self, row: Row) -> APIClient:
        """For rows with a credential of their own (`refusal`): a client that holds it."""
        if row.key == ("POST", "/agent/enroll"):
            from apikeys.enrollment import enrollment_token_create

            issued = enrollment_token_create(
                by=Caller.system(tenant_id=self.tenant.id),
                name="own credential",
                expires_at=timezone.now() + timedelta(days=1),
                max_uses=1000,
            )
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
            return client
        if row.key == ("POST", "/public/secret-scanning/github"):
            from apikeys.tests.github import GithubSigningClient

            return GithubSigningClient()
        raise AssertionError(f"{row.method} {row.path}: no client for its own credential")

    @cached_property
    def enrollment_token(self):
        from apikeys.enrollment import enrollment_token_create

        return enrollment_token_create(
            by=Caller.system(tenant_id=self.tenant.id),
            name="matrix token",
            expires_at=timezone.now() + timedelta(days=1),
        ).token

    @cached_property
    def retention_hold(self):
        from retention.models import RetentionHold

        return RetentionHold.objects.create(
            tenant=self.tenant, reason="Matrix hold", starts_at=timezone.now() - timedelta(days=400)
        )

    @cached_property
    def retention_run(self):
        from retention.models import RetentionRun

        return RetentionRun.objects.create(
            tenant=self.tenant, trigger=RetentionRun.Trigger.MANUAL, status=RetentionRun.Status.SUCCEEDED
        )

    @cached_property
    def webhook_delivery(self):
        from webhooks.models import WebhookDelivery

        return WebhookDelivery.objects.create(
            tenant=self.tenant, event_id=uuid.uuid4(), type="api_key.rotated", payload={}, status="failed"
        )

    # The object a path parameter names, by default; a row may say otherwise (`path_objects`).
    PATH_OBJECTS = {
        "delivery_id": "webhook_delivery",
        "user_id": "target_user",
        "key_id": "target_key",
        "run_id": "retention_run",
        "token_id": "enrollment_token",
    }

    def path_value(self, row: Row, name: str) -> str:
        value = getattr(self, row.path_objects.get(name) or self.PATH_OBJECTS[name])
        return value if isinstance(value, str) else str(value.pk)

    def url(self, row: Row) -> str:
        return API_PREFIX + re.sub(r"{(\w+)}", lambda m: self.path_value(row, m.group(1)), row.path)

    def prepare(self, row: Row) -> None:
        # Rows that read or write telemetry need the tenant's machine and sensor to exist.
        if row.scope is not None:
            _ = self.sensor
        # A body may name objects (e.g. a key to revoke): create them before audit events are counted.
        if callable(row.body):
            row.body(self)


@pytest.fixture
def world(tenant, other_tenant, admin_user, operator_user, viewer_user, other_tenant_admin, make_api_key) -> World:
    return World(tenant, other_tenant, admin_user, operator_user, viewer_user, other_tenant_admin, make_api_key)


def send(client: APIClient, row: Row, world: World):
    url = world.url(row)
    query = row.query(world) if callable(row.query) else row.query
    body = row.body(world) if callable(row.body) else row.body
    if row.method == "GET":
        return client.get(url, query or {})
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return client.generic(row.method, url, data=_json(body), content_type="application/json")


def _json(body) -> str:
    import json

    return "" if body is None else json.dumps(body)


# --- The tests -------------------------------------------------------------------------------


def _cells():
    for entry in MATRIX:
        for caller in CALLERS:
            marks = []
            if caller in entry.deviations:
                marks.append(pytest.mark.xfail(strict=True, reason=entry.deviations[caller]))
            yield pytest.param(entry, caller, id=f"{entry.method} {entry.path} as {caller}", marks=marks)


def expected_detail(entry: Row, caller: str, status: int) -> str | None:
    """The exact `detail` the contract fixes for a refusal, or None where only the shape is fixed."""
    if status == 401 and caller == "anonymous":
        return "Authentication credentials were not provided."
    if status == 403 and caller.startswith("key:"):
        scope = entry.write_scope if entry.write_scope and entry.method != "GET" else entry.scope
        return USER_LOGIN_REQUIRED if scope is None else missing_scope_message(scope)
    if status == 403 and caller in USER_CALLERS:
        return API_KEY_REQUIRED if entry.key_only else ADMIN_REQUIRED
    return None


@pytest.mark.django_db
@pytest.mark.parametrize(("entry", "caller"), list(_cells()))
def test_access(world, entry: Row, caller: str):
    world.prepare(entry)
    url_objects_ready = world.url(entry)  # create path objects before counting audit events
    assert url_objects_ready
    client = world.client_for(caller)
    events_before = set(AuditEvent.objects.values_list("id", flat=True))

    response = send(client, entry, world)

    expected = entry.status_for(caller)
    assert response.status_code == expected, response.content[:500]
    new_events = AuditEvent.objects.exclude(id__in=events_before)
    if status_is_error(expected):
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("detail"), str), body
        detail = entry.refusal or expected_detail(entry, caller, expected)
        if detail is not None:
            assert body["detail"] == detail
        if caller in ("key:revoked", "key:expired") and entry.refusal is None:
            assert caller.removeprefix("key:") in body["detail"].lower()
        assert not new_events.exists(), "a refused request left an audit event"
    elif entry.method == "GET":
        assert not new_events.exists(), "a read left an audit event"
    elif caller in USER_CALLERS and entry.audit != NOT_AUDITED:
        user = world.user_for(caller)
        recorded = list(new_events.values_list("action", "actor_id", "tenant_id"))
        assert (entry.audit, user.id, user.tenant_id) in recorded, recorded
    elif caller.startswith("key:") and entry.audit != NOT_AUDITED:
        # A key's write is audited too, on the key's tenant, with the key as its actor.
        recorded = [
            (action, tenant_id)
            for action, actor_id, tenant_id in new_events.values_list("action", "actor_id", "tenant_id")
            if actor_id is not None
        ]
        assert (entry.audit, world.tenant.id) in recorded, recorded


def status_is_error(status: int) -> bool:
    return status >= 400


class TestTableCoversTheApi:
    def test_every_endpoint_and_method_has_a_row(self):
        missing = sorted(set(api_operations()) - set(MATRIX_BY_KEY))
        assert not missing, f"Endpoints without a row in the access matrix (add one, deciding each caller): {missing}"

    def test_every_row_names_an_existing_endpoint(self):
        stale = sorted(set(MATRIX_BY_KEY) - set(api_operations()))
        assert not stale, f"Rows for endpoints that no longer exist: {stale}"

    def test_rows_are_unique(self):
        assert len(MATRIX_BY_KEY) == len(MATRIX)

    @pytest.mark.parametrize("entry", MATRIX, ids=lambda r: f"{r.method} {r.path}")
    def test_row_declares_the_scope_and_login_rule_of_its_view(self, entry: Row):
        callback = api_operations().get(entry.key)
        if callback is None:
            pytest.fail(f"{entry.method} {entry.path} does not exist")
        view_class = _view_class(callback)
        assert getattr(view_class, "required_scope", None) == entry.scope
        assert getattr(view_class, "required_write_scope", None) == entry.write_scope
        assert (not getattr(view_class, "allow_user_login", True)) == entry.key_only

    @pytest.mark.parametrize("entry", [r for r in MATRIX if r.method != "GET"], ids=lambda r: f"{r.method} {r.path}")
    def test_every_write_row_says_how_it_is_audited(self, entry: Row):
        assert entry.audit, f"{entry.method} {entry.path}: name the audit action, or NOT_AUDITED"

    def test_enumeration_finds_known_endpoints(self):
        # Guards the walker itself: were it to find nothing, the coverage tests would pass vacuously.
        operations = api_operations()
        assert ("GET", "/settings/audit-log") in operations
        assert ("PUT", "/users/{user_id}/role") in operations
        assert len(operations) >= 10
