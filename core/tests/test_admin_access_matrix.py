"""Who reaches which admin page: every URL of every registered ModelAdmin, for every kind of caller.

Built from the admin's registry: a newly registered model without a row in ROWS fails
`test_every_registered_model_has_a_row`, so no page is added without deciding who sees it.

Callers: platform staff, the tenant's admin, another tenant's admin, the tenant's
operator, and an anonymous visitor. Views: changelist, add, change, delete, history
(of one row of the tenant) and the autocomplete endpoint for each foreign key whose
target has a searchable admin page.
"""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apikeys.authentication import ApiKeyPrincipal
from apikeys.enrollment import enrollment_token_create
from apikeys.models import ApiKeyPolicy
from apikeys.services import api_key_create
from audit.tests.factories import AuditEventFactory
from core.caller import Caller
from retention.models import RetentionHold, RetentionPolicy
from retention.tests.factories import RetentionRunFactory
from settings_app.tests.factories import (
    AiSettingsFactory,
    DashboardPresetFactory,
    RolePermissionFactory,
    UnitPreferenceFactory,
)
from telemetry.models import SensorReading
from telemetry.services import heartbeat_record, readings_bulk_insert
from telemetry.tests.factories import MachineFactory, SensorFactory
from users.models import Role, User
from users.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

VIEWS = ("changelist", "add", "change", "delete", "history")
CALLERS = ("staff", "tenant_admin", "other_tenant_admin", "operator", "anonymous")
ALL = frozenset(VIEWS)
NONE = frozenset()
READ = frozenset({"changelist", "change", "history"})  # "change" is the read-only page here


@dataclass(frozen=True)
class Row:
    """What platform staff and a tenant admin may open; `make(tenant)` builds one row of the tenant."""

    make: object
    staff: frozenset = ALL
    tenant_admin: frozenset = NONE


def _sensor(tenant):
    return SensorFactory(machine=MachineFactory(tenant=tenant), key="bearing_temp", kind="temperature")


def _reading(tenant):
    sensor = _sensor(tenant)
    readings_bulk_insert(tenant_id=tenant.id, rows=[(sensor.pk, timezone.now() - timedelta(minutes=1), 20.0)])
    return SensorReading.objects.get(sensor=sensor)


def _heartbeat(tenant):
    issued = api_key_create(by=Caller.system(tenant_id=tenant.id), name="agent", scopes_requested="edge_agent")
    return heartbeat_record(by=Caller.acting(ApiKeyPrincipal(issued.api_key)), agent_version="1.0")


ROWS: dict[str, Row] = {
    # Platform pages: staff only.
    "tenants.Tenant": Row(make=lambda tenant: tenant),
    "auth.Group": Row(make=lambda tenant: Group.objects.create(name=f"group of {tenant.name}")),
    # The tenant admin's console.
    "users.User": Row(
        make=lambda tenant: UserFactory(tenant=tenant, role=Role.VIEWER),
        staff=ALL - {"delete"},
        tenant_admin=ALL - {"delete"},
    ),
    "apikeys.ApiKey": Row(
        make=lambda tenant: (
            api_key_create(by=Caller.system(tenant_id=tenant.id), name="k", scopes_requested="read_only").api_key
        ),
        staff=ALL - {"delete"},
        tenant_admin=ALL - {"delete"},
    ),
    "apikeys.EnrollmentToken": Row(
        make=lambda tenant: (
            enrollment_token_create(
                by=Caller.system(tenant_id=tenant.id),
                name=f"line of {tenant.name}",
                expires_at=timezone.now() + timedelta(days=1),
            ).token
        ),
        staff=ALL - {"delete"},
        tenant_admin=ALL - {"delete"},
    ),
    "apikeys.ApiKeyPolicy": Row(
        make=lambda tenant: ApiKeyPolicy.objects.create(tenant=tenant),
        staff=ALL - {"delete"},
        tenant_admin=ALL - {"delete"},
    ),
    "telemetry.Machine": Row(make=lambda tenant: MachineFactory(tenant=tenant), tenant_admin=ALL),
    "telemetry.Sensor": Row(make=_sensor, staff=ALL - {"add"}, tenant_admin=READ | {"delete"}),
    "telemetry.SensorReading": Row(make=_reading, staff=READ, tenant_admin=READ),
    "telemetry.AgentHeartbeat": Row(make=_heartbeat, staff=READ, tenant_admin=READ),
    "settings_app.RolePermission": Row(
        make=lambda tenant: RolePermissionFactory(tenant=tenant),
        staff=ALL - {"delete"},
        tenant_admin=ALL - {"delete"},
    ),
    "settings_app.AiSettings": Row(
        make=lambda tenant: AiSettingsFactory(tenant=tenant), staff=ALL - {"delete"}, tenant_admin=ALL - {"delete"}
    ),
    "settings_app.DashboardPreset": Row(
        make=lambda tenant: DashboardPresetFactory(tenant=tenant),
        staff=ALL - {"delete"},
        tenant_admin=ALL - {"delete"},
    ),
    "settings_app.UnitPreference": Row(
        make=lambda tenant: UnitPreferenceFactory(user=UserFactory(tenant=tenant)),
        staff=ALL - {"delete"},
        tenant_admin=ALL - {"delete"},
    ),
    "retention.RetentionRun": Row(
        make=lambda tenant: RetentionRunFactory(tenant=tenant), staff=READ, tenant_admin=READ
    ),
    # Changed through the retention services (a policy is emptied, never deleted; adding the
    # tenant's one policy when it exists sets it). Holds are placed and released, never
    # edited or deleted (their change page is read-only).
    "retention.RetentionPolicy": Row(
        make=lambda tenant: RetentionPolicy.objects.create(tenant=tenant, readings_days=3),
        staff=ALL - {"delete"},
        tenant_admin=ALL - {"delete"},
    ),
    "retention.RetentionHold": Row(
        make=lambda tenant: RetentionHold.objects.create(
            tenant=tenant, reason="a case", starts_at=timezone.now() - timedelta(days=10)
        ),
        staff=ALL - {"delete"},
        tenant_admin=ALL - {"delete"},
    ),
    "audit.AuditEvent": Row(make=lambda tenant: AuditEventFactory(tenant=tenant), staff=READ, tenant_admin=READ),
}


def registered_labels() -> list[str]:
    return sorted(model._meta.label for model in admin.site._registry)


def test_every_registered_model_has_a_row():
    missing = set(registered_labels()) - set(ROWS)
    assert not missing, f"admin pages without a row in ROWS (decide who may open them): {sorted(missing)}"
    assert not set(ROWS) - set(registered_labels()), "rows for models that are no longer registered"


def url_of(model, view: str, obj) -> str:
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}"
    return reverse(name, args=[obj.pk]) if view in ("change", "delete", "history") else reverse(name)


@pytest.fixture
def callers(tenant, other_tenant) -> dict[str, Client]:
    people = {
        "staff": User.objects.create_superuser("staff@haltless.test", "Staff-Password-42!"),
        "tenant_admin": UserFactory(tenant=tenant, role=Role.ADMIN, email="admin@acme.test"),
        "other_tenant_admin": UserFactory(tenant=other_tenant, role=Role.ADMIN, email="admin@other.test"),
        "operator": UserFactory(tenant=tenant, role=Role.OPERATOR, email="operator@acme.test"),
    }
    clients = {"anonymous": Client()}
    for name, user in people.items():
        clients[name] = Client()
        clients[name].force_login(user)
    return clients


def expected_status(row: Row, view: str, caller: str) -> int:
    if caller in ("anonymous", "operator"):
        return 302  # to the login page: not a console user
    if caller == "staff":
        return 200 if view in row.staff else 403
    allowed = view in row.tenant_admin
    if caller == "other_tenant_admin" and view in ("change", "delete", "history") and allowed:
        return 404  # another tenant's row is not found, as in the API
    return 200 if allowed else 403


@pytest.mark.parametrize("label", sorted(ROWS))
def test_every_admin_url_for_every_caller(label, tenant, callers):
    row = ROWS[label]
    model = next(m for m in admin.site._registry if m._meta.label == label)
    obj = row.make(tenant)
    seen = {}
    for view in VIEWS:
        url = url_of(model, view, obj)
        for caller in CALLERS:
            response = callers[caller].get(url)
            seen[(view, caller)] = response.status_code
            if response.status_code == 302:
                assert response["Location"].startswith("/admin/login/"), (url, caller, response["Location"])
    expected = {(view, caller): expected_status(row, view, caller) for view in VIEWS for caller in CALLERS}
    wrong = {key: (seen[key], want) for key, want in expected.items() if seen[key] != want}
    assert not wrong, f"{label}: (view, caller) -> (got, expected): {wrong}"


def autocomplete_cases():
    """Every foreign key of a registered model whose target has a searchable admin page."""
    for source, _ in sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label):
        for field in source._meta.get_fields():
            if not (field.many_to_one or field.many_to_many) or not field.concrete:
                continue
            target_admin = admin.site._registry.get(field.related_model)
            if target_admin is not None and target_admin.search_fields:
                yield pytest.param(source, field, id=f"{source._meta.label}.{field.name}")


@pytest.mark.parametrize(("source", "field"), list(autocomplete_cases()))
def test_autocomplete_answers_only_with_the_callers_rows(source, field, tenant, other_tenant, callers):
    target = field.related_model
    label = target._meta.label
    mine, theirs = ROWS[label].make(tenant), ROWS[label].make(other_tenant)
    query = {"app_label": source._meta.app_label, "model_name": source._meta.model_name, "field_name": field.name}
    for caller in CALLERS:
        response = callers[caller].get("/admin/autocomplete/", query)
        if caller in ("anonymous", "operator"):
            assert response.status_code == 302, caller
            continue
        allowed = caller == "staff" or "changelist" in ROWS[label].tenant_admin
        assert response.status_code == (200 if allowed else 403), (caller, response.status_code)
        if response.status_code != 200:
            continue
        ids = {item["id"] for item in response.json()["results"]}
        if caller == "staff":
            assert {str(mine.pk), str(theirs.pk)} <= ids
        else:
            own = mine if caller == "tenant_admin" else theirs
            other = theirs if caller == "tenant_admin" else mine
            assert str(own.pk) in ids and str(other.pk) not in ids, (caller, ids)


def _tenant_of(obj, model_admin):
    from core.admin import _tenant_id_of

    return _tenant_id_of(obj, getattr(model_admin, "tenant_path", "tenant"))


@pytest.mark.parametrize("label", sorted(label for label, row in ROWS.items() if "changelist" in row.tenant_admin))
def test_a_tenant_admins_lists_hold_only_their_tenants_rows(label, tenant, other_tenant, callers):
    model_admin = next(ma for m, ma in admin.site._registry.items() if m._meta.label == label)
    mine, theirs = ROWS[label].make(tenant), ROWS[label].make(other_tenant)
    for caller, own, other in (("tenant_admin", mine, theirs), ("other_tenant_admin", theirs, mine)):
        response = callers[caller].get(url_of(model_admin.model, "changelist", own))
        shown = list(response.context["cl"].result_list)
        assert own.pk in {row.pk for row in shown} and other.pk not in {row.pk for row in shown}
        assert {_tenant_of(row, model_admin) for row in shown} == {own_tenant(own, model_admin)}


def own_tenant(obj, model_admin):
    return _tenant_of(obj, model_admin)


@pytest.mark.parametrize("label", sorted(label for label, row in ROWS.items() if "add" in row.tenant_admin))
def test_no_form_offers_a_tenant_admin_another_tenants_objects(label, tenant, other_tenant, callers):
    from django.forms import ModelChoiceField

    for maker in ROWS.values():  # something of every kind in both tenants, to be (not) offered
        maker.make(other_tenant)
    model_admin = next(ma for m, ma in admin.site._registry.items() if m._meta.label == label)
    page = callers["tenant_admin"].get(url_of(model_admin.model, "add", None))
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert "tenant" not in form.fields
    for name, field in form.fields.items():
        if not isinstance(field, ModelChoiceField):
            continue
        for choice in field.queryset:
            related_admin = admin.site._registry.get(field.queryset.model)
            choice_tenant = choice.pk if choice._meta.label == "tenants.Tenant" else _tenant_of(choice, related_admin)
            assert choice_tenant == tenant.pk, (label, name, choice)


def test_another_tenants_row_is_an_admin_page_that_says_not_found(tenant, callers):
    machine = ROWS["telemetry.Machine"].make(tenant)
    response = callers["other_tenant_admin"].get(url_of(machine._meta.model, "change", machine))
    assert response.status_code == 404
    assert "There is no machine with this id." in response.content.decode()
    assert machine.name not in response.content.decode()
