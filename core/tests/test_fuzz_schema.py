"""Schemathesis against the served OpenAPI schema: no 5xx, and every answer is the documented one.

The Django WSGI application runs in-process on the test database; every
operation is called with valid credentials: an admin's JWT, and for the
scope-guarded endpoints an API key holding every scope (both, drawn per
example, where an endpoint takes either). Half of the examples put a real
object of the caller's tenant into the path, so that success answers are
checked too and not only 404s.

Bounded so that CI stays fast: a fixed seed (derandomized), at most
FUZZ_MAX_EXAMPLES generated examples per operation and phase, no shrinking,
no example database. Select it with `-m fuzz`, skip it with `-m "not fuzz"`.

Nothing leaves the machine: the AI model probe is an outbound request chosen by
the caller, so every connection and name lookup to anything but loopback is
refused here, and the probe must turn that into its documented error.
"""

import contextlib
import ipaddress
import re
import socket

import hypothesis
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.checks import load_all_checks, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.tests.test_access_matrix import MATRIX, World
from users.tokens import token_pair_for

load_all_checks()

FUZZ_MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ALL_SCOPES = ["ingest", "agent", "read:machines", "read:sensors"]

pytestmark = [pytest.mark.fuzz]


def _shape(path: str) -> str:
    """`/machines/{id}` and `/machines/{pk}` are the same endpoint: compare without names."""
    return re.sub(r"{\w+}", "{}", path)


ROWS_BY_SHAPE = {(r.method, _shape(r.path)): r for r in MATRIX}


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host == "localhost"
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@pytest.fixture
def loopback_only(monkeypatch):
    """Refuse, before any packet leaves, every connection or lookup that is not loopback."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        if not _is_loopback(host_text):
            raise socket.gaierror(socket.EAI_NONAME, "blocked in tests: not loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else ""
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(str(host)):
            raise ConnectionRefusedError(f"blocked in tests: {host} is not loopback")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


CONFIG = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
FUZZ_SETTINGS = hypothesis.settings(
    database=None,  # nothing written to .hypothesis/
    deadline=None,
    derandomize=True,  # a fixed seed: the same examples on every run
    max_examples=FUZZ_MAX_EXAMPLES,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


@pytest.fixture
def fuzz_world(tenant, other_tenant, admin_user, operator_user, viewer_user, other_tenant_admin, make_api_key):
    world = World(tenant, other_tenant, admin_user, operator_user, viewer_user, other_tenant_admin, make_api_key)
    world.jwt = token_pair_for(admin_user)["access"]
    world.key = make_api_key(scopes=ALL_SCOPES, name="fuzz").secret
    _ = world.sensor  # readings and machines endpoints have something to find
    return world


_schema_cache: dict[str, object] = {}


def served_schema():
    """The schema as /api/schema/ serves it, loaded once per session."""
    if "schema" not in _schema_cache:
        _schema_cache["schema"] = schemathesis.openapi.from_wsgi(
            "/api/schema/?format=json", get_wsgi_application(), config=CONFIG
        )
    return _schema_cache["schema"]


def operations_by_shape() -> dict:
    operations = {}
    for result in served_schema().get_all_operations():
        operation = result.ok()
        operations[(operation.method.upper(), _shape(operation.path.removeprefix("/api/v1")))] = operation
    return operations


def _matrix_param(entry, schema_name: str) -> str:
    # The schema may call `{pk}` `{id}`; the row's own name finds the object.
    names = re.findall(r"{(\w+)}", entry.path)
    return schema_name if schema_name in names else names[0]


def test_every_schema_operation_has_an_access_matrix_row():
    missing = sorted(set(operations_by_shape()) - set(ROWS_BY_SHAPE))
    assert not missing, f"Operations in the schema without an access-matrix row: {missing}"


# Operations whose schema is known to be wrong in a way the owning app has been told
# about: the named check is left out for them (never `not_a_server_error`).
KNOWN_SCHEMA_DEVIATIONS: dict[tuple[str, str], tuple[object, str]] = {}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("entry", MATRIX, ids=lambda r: f"{r.method} {r.path}")
def test_operation_conforms_to_its_schema(entry, fuzz_world, loopback_only):
    operation = operations_by_shape().get((entry.method, _shape(entry.path)))
    assert operation is not None, f"{entry.method} {entry.path} is not in the served schema"
    checks = list(CHECKS)
    if entry.key in KNOWN_SCHEMA_DEVIATIONS:
        checks.remove(KNOWN_SCHEMA_DEVIATIONS[entry.key][0])

    def fuzz(mode):
        @FUZZ_SETTINGS
        @hypothesis.given(
            case=operation.as_strategy(generation_mode=mode), use_real=st.booleans(), use_key=st.booleans()
        )
        def call(case, use_real, use_key):
            if use_real and case.path_parameters:
                for name in list(case.path_parameters):
                    case.path_parameters[name] = fuzz_world.path_value(entry, _matrix_param(entry, name))
            if entry.scope is not None and (entry.key_only or use_key):
                headers = {"X-API-Key": fuzz_world.key}
            else:
                headers = {"Authorization": f"Bearer {fuzz_world.jwt}"}
            case.call_and_validate(headers=headers, checks=checks)

        call()

    # Valid input: the documented success answers (or documented refusals).
    fuzz(schemathesis.GenerationMode.POSITIVE)
    # Invalid input: a documented 4xx, never a 5xx.
    # (Unsatisfiable: no parameters and no body fields, nothing to make invalid.)
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        fuzz(schemathesis.GenerationMode.NEGATIVE)
