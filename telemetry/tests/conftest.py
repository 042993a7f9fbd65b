import pytest

from haltless.testing import add_sensors, client_for_key
from telemetry.tests.factories import MachineFactory


@pytest.fixture
def machine(tenant):
    """Press 1 (`m1`) of `tenant`, with one sensor of each kind."""
    machine = MachineFactory(tenant=tenant, external_id="m1", name="Press 1", location="Hall A")
    add_sensors(machine)
    return machine


@pytest.fixture
def other_machine(other_tenant):
    """Another tenant's machine with the same external_id and sensor keys as `machine`."""
    machine = MachineFactory(tenant=other_tenant, external_id="m1", name="Their press", location="Elsewhere")
    add_sensors(machine)
    return machine


@pytest.fixture
def reader_client(read_only_key):
    """A dashboard: a `read_only` key (read:machines, read:sensors) of `tenant`."""
    return client_for_key(read_only_key.secret)


@pytest.fixture
def other_tenant_key_client(make_api_key, other_tenant):
    return client_for_key(
        make_api_key(scopes=["ingest", "agent", "read:machines", "read:sensors"], tenant=other_tenant).secret
    )
