"""A client generated from /api/schema/ drives the main flows against a live server (issue 12).

`openapi-python-client` (pinned in requirements-dev; it runs offline) generates
a Python package from the schema the live server serves; the tests then use only
that package, as an integrator would: typed request bodies, typed answers, and
for every error the typed error body, whose message must reach the caller. A
schema that documents an error without its body makes the generated client
drop the message, and these tests fail.
"""

import datetime
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from telemetry.tests.factories import MachineFactory, SensorFactory
from users.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = [pytest.mark.generated_client, pytest.mark.django_db(transaction=True)]
PACKAGE = "haltless_client"


_GENERATED: dict[str, object] = {}


@pytest.fixture
def hc(live_server, transactional_db, tmp_path_factory):
    """The generated package (module `haltless_client`), generated once from the live server's schema."""
    if "package" not in _GENERATED:
        _GENERATED["package"] = _generate(live_server.url, tmp_path_factory.mktemp("generated"))
    return _GENERATED["package"]


def _generate(base_url: str, workdir: Path):
    schema = requests.get(base_url + "/api/schema/", params={"format": "json"}, timeout=30)
    assert schema.status_code == 200
    (workdir / "schema.json").write_text(json.dumps(schema.json()))
    (workdir / "config.yaml").write_text("post_hooks: []\n")
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            "schema.json",
            "--meta",
            "none",
            "--output-path",
            PACKAGE,
            "--config",
            "config.yaml",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout, done.stdout  # every part of the schema became client code
    sys.path.insert(0, str(workdir))
    return importlib.import_module(PACKAGE)


def api(hc, path: str):
    return importlib.import_module(f"{PACKAGE}.api.{path}")


def models(hc):
    return importlib.import_module(f"{PACKAGE}.models")


@pytest.fixture
def world(tenant):
    admin = UserFactory(tenant=tenant, role="admin", email="boss@acme.test")
    machine = MachineFactory(tenant=tenant, external_id="press-01", name="Press 1")
    SensorFactory(machine=machine, key="bearing_temp", kind="temperature")
    return {"admin": admin, "machine": machine}


@pytest.fixture
def admin(hc, live_server, world):
    """An AuthenticatedClient of the tenant's admin, logged in through the generated login call."""
    login = api(hc, "auth.auth_token_create")
    body = models(hc).TokenObtainInputRequest(email="boss@acme.test", password=DEFAULT_PASSWORD)
    answer = login.sync_detailed(client=hc.Client(base_url=live_server.url), body=body)
    assert answer.status_code == 200
    return hc.AuthenticatedClient(base_url=live_server.url, token=answer.parsed.access)


class TestLogin:
    def test_a_wrong_password_gives_the_caller_the_message(self, hc, live_server, world):
        login = api(hc, "auth.auth_token_create")
        body = models(hc).TokenObtainInputRequest(email="boss@acme.test", password="wrong-password-123")
        answer = login.sync_detailed(client=hc.Client(base_url=live_server.url), body=body)
        assert answer.status_code == 401
        assert type(answer.parsed).__name__ == "AuthTokenCreateResponse401"
        assert answer.parsed.detail == json.loads(answer.content)["detail"]
        assert answer.parsed.detail

    def test_who_am_i(self, hc, admin):
        me = api(hc, "me.me_retrieve").sync(client=admin)
        assert me.user.email == "boss@acme.test"
        assert me.user.role == "admin"


class TestApiKeysAndTelemetry:
    def test_a_key_from_creation_to_revocation(self, hc, live_server, admin, world):
        m = models(hc)
        created = api(hc, "settings.settings_api_keys_create").sync_detailed(
            client=admin,
            body=m.ApiKeyCreateInputRequest(
                name="edge",
                scopes=[
                    m.ApiKeyCreateInputRequestScopesType0Item("edge_agent"),
                    m.ApiKeyCreateInputRequestScopesType0Item("read_only"),
                ],
            ),
        )
        assert created.status_code == 201
        key = created.parsed.key
        assert key.startswith("hlts_") and created.parsed.prefix == key[:12]
        listed = api(hc, "settings.settings_api_keys_list").sync(client=admin)
        assert [item.prefix for item in listed] == [created.parsed.prefix]

        agent = hc.AuthenticatedClient(base_url=live_server.url, token=key)
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        ingest = api(hc, "ingest.ingest_readings")
        good = m.IngestInputRequest(
            readings=[m.IngestReadingRequest(machine="press-01", sensor="bearing_temp", ts=now, value=21.5)]
        )
        accepted = ingest.sync_detailed(client=agent, body=good)
        assert accepted.status_code == 202
        assert accepted.parsed.accepted == 1

        too_hot = m.IngestInputRequest(
            readings=[m.IngestReadingRequest(machine="press-01", sensor="bearing_temp", ts=now, value=6000.0)]
        )
        refused = ingest.sync_detailed(client=agent, body=too_hot)
        assert refused.status_code == 400
        assert refused.parsed.readings == {
            "0": {"value": ["Must be between -273.15 and 5000 (°C) for a temperature sensor."]}
        }

        latest = api(hc, "sensor_data.sensor_data_latest_list").sync(client=agent, machine="press-01")
        assert [(r.sensor, r.value, r.unit) for r in latest] == [("bearing_temp", 21.5, "celsius")]
        unknown = api(hc, "sensor_data.sensor_data_latest_list").sync_detailed(client=agent, machine="nope")
        assert unknown.status_code == 404
        assert unknown.parsed.detail == "Machine 'nope' not found."

        machines = api(hc, "machines.machines_list").sync(client=agent)
        assert [machine.external_id for machine in machines.results] == ["press-01"]

        revoked = api(hc, "settings.settings_api_keys_destroy").sync_detailed(created.parsed.id, client=admin)
        assert revoked.status_code == 204
        after = ingest.sync_detailed(client=agent, body=good)
        assert after.status_code == 401
        assert after.parsed.detail == "API key has been revoked."

    def test_a_key_without_a_name_is_refused_with_the_fields_message(self, hc, admin):
        answer = api(hc, "settings.settings_api_keys_create").sync_detailed(
            client=admin, body=models(hc).ApiKeyCreateInputRequest(name="")
        )
        assert answer.status_code == 400
        assert answer.parsed["name"] == ["This field may not be blank."]

    def test_an_api_key_cannot_manage_keys(self, hc, live_server, admin):
        m = models(hc)
        created = api(hc, "settings.settings_api_keys_create").sync(
            client=admin,
            body=m.ApiKeyCreateInputRequest(name="reader", scopes=m.ApiKeyCreateInputRequestScopesType1("read_only")),
        )
        reader = hc.AuthenticatedClient(base_url=live_server.url, token=created.key)
        answer = api(hc, "settings.settings_api_keys_destroy").sync_detailed(created.id, client=reader)
        assert answer.status_code == 403
        assert "user login" in answer.parsed.detail


class TestUsers:
    def test_create_change_role_and_the_rules_that_refuse(self, hc, admin, world):
        m = models(hc)
        create = api(hc, "users.users_create")
        body = m.UserCreateInputRequest(
            email="new.person@acme.test", password="Onboard-Secret-2031", role=m.RoleEnum.OPERATOR
        )
        created = create.sync_detailed(client=admin, body=body)
        assert created.status_code == 201
        assert created.parsed.role == m.RoleEnum.OPERATOR

        again = create.sync_detailed(client=admin, body=body)
        assert again.status_code == 400
        assert list(again.parsed.additional_properties) == ["email"]

        role = api(hc, "users.users_role_update")
        changed = role.sync_detailed(
            created.parsed.id, client=admin, body=m.UserRoleInputRequest(role=m.RoleEnum.VIEWER)
        )
        assert changed.status_code == 200
        assert changed.parsed.role == m.RoleEnum.VIEWER

        last_admin = role.sync_detailed(
            world["admin"].id, client=admin, body=m.UserRoleInputRequest(role=m.RoleEnum.VIEWER)
        )
        assert last_admin.status_code == 400
        assert last_admin.parsed["detail"]  # a 400 is `{"field": [...]}` or `{"detail": "..."}`: any object

        myself = api(hc, "users.users_destroy").sync_detailed(world["admin"].id, client=admin)
        assert myself.status_code == 400
        assert myself.parsed["detail"]

        gone = api(hc, "users.users_destroy").sync_detailed(created.parsed.id, client=admin)
        assert gone.status_code == 204


class TestSettings:
    def test_units_change_what_readings_say(self, hc, admin):
        m = models(hc)
        units = api(hc, "settings.settings_units_partial_update").sync(
            client=admin, body=m.PatchedUnitPreferencesRequest(temperature=m.TemperatureEnum.FAHRENHEIT)
        )
        assert units.temperature == m.TemperatureEnum.FAHRENHEIT

    def test_an_ai_probe_to_a_metadata_address_is_refused_with_the_contracts_text(self, hc, admin):
        answer = api(hc, "settings.settings_ai_models_retrieve").sync_detailed(
            client=admin, probe_url="http://169.254.169.254/"
        )
        assert answer.status_code == 400
        assert answer.parsed["detail"] == "This address is not allowed for an AI server."

    def test_retention_runs(self, hc, admin):
        accepted = api(hc, "retention.retention_run_create").sync_detailed(client=admin)
        assert accepted.status_code == 202
        runs = api(hc, "retention.settings_admin_retention_runs_list").sync(client=admin)
        assert [run.id for run in runs] == [accepted.parsed.run_id]
