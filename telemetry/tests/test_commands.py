from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from telemetry.management.commands.seed_demo import DEMO_MACHINES, DEMO_TENANT
from telemetry.models import Machine, SensorReading
from tenants.models import Tenant
from users.models import User

pytestmark = pytest.mark.django_db


def create_machine(*args: str) -> str:
    out = StringIO()
    call_command("create_machine", *args, stdout=out)
    return out.getvalue().strip()


class TestCreateMachine:
    def test_prints_the_id_of_the_new_machine_with_its_sensors(self, tenant):
        printed = create_machine(
            "--tenant", "acme plant", "--external-id", "press-9", "--name", "Press 9", "--location", "Hall B",
            "--sensor", "bearing_temp:temperature", "oil:pressure", "--sensor", "rpm:speed",
        )  # fmt: skip
        machine = Machine.objects.get()
        assert printed == str(machine.id)
        assert (machine.tenant, machine.external_id, machine.name, machine.location) == (
            tenant,
            "press-9",
            "Press 9",
            "Hall B",
        )
        assert sorted(machine.sensors.values_list("key", "kind")) == [
            ("bearing_temp", "temperature"),
            ("oil", "pressure"),
            ("rpm", "speed"),
        ]
        event = AuditEvent.objects.get(action="machine.create")
        assert event.tenant_id == tenant.id
        assert event.target_id == str(machine.id)

    def test_tenant_by_id_and_no_sensors(self, tenant):
        printed = create_machine("--tenant", str(tenant.id), "--external-id", "m", "--name", "M")
        assert Machine.objects.get(pk=printed).sensors.count() == 0

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--tenant", "nowhere"], "No tenant with id or name 'nowhere'."),
            (["--sensor", "temp"], "--sensor 'temp': expected KEY:KIND, e.g. bearing_temp:temperature."),
            (
                ["--sensor", "temp:heat"],
                "sensors: 'temp': unknown kind 'heat'; choose one of: "
                "temperature, pressure, vibration, current, speed, other.",
            ),
            (["--sensor", "t:current", "t:speed"], "sensors: 't' is given twice."),
            (["--name", " "], "name: This field cannot be blank."),
            (["--external-id", " "], "external_id: This field cannot be blank."),
        ],
    )
    def test_bad_input_is_a_one_line_error(self, tenant, args, message):
        base = {"--tenant": "Acme Plant", "--external-id": "m1", "--name": "Press"}
        for flag in ("--tenant", "--external-id", "--name"):
            if flag in args:
                base.pop(flag)
        argv = [item for pair in base.items() for item in pair] + args
        with pytest.raises(CommandError) as exc:
            create_machine(*argv)
        assert str(exc.value) == message
        assert "\n" not in str(exc.value)
        assert not Machine.objects.exists()

    def test_a_duplicate_external_id_in_the_tenant_is_refused(self, tenant, other_tenant):
        create_machine("--tenant", "Other Works", "--external-id", "m1", "--name", "Theirs")
        create_machine("--tenant", "Acme Plant", "--external-id", "m1", "--name", "Ours")
        with pytest.raises(CommandError) as exc:
            create_machine("--tenant", "Acme Plant", "--external-id", "m1", "--name", "Again")
        assert str(exc.value) == "external_id: The tenant already has a machine with external id 'm1'."
        assert Machine.objects.count() == 2


class TestSeedDemo:
    def test_creates_users_machines_and_a_week_of_readings_once(self):
        out = StringIO()
        call_command("seed_demo", stdout=out)
        tenant = Tenant.objects.get(name=DEMO_TENANT)
        assert User.objects.filter(tenant=tenant).count() == 3
        assert sorted(Machine.objects.filter(tenant=tenant).values_list("external_id", flat=True)) == sorted(
            m[0] for m in DEMO_MACHINES
        )
        sensor_count = sum(len(m[3]) for m in DEMO_MACHINES)
        per_sensor = 7 * 24 * 60 + 1
        assert SensorReading.objects.filter(tenant=tenant).count() == sensor_count * per_sensor
        assert "admin@demo.haltless.test" in out.getvalue()
        assert "The tenant admin's console is /admin/: log in there as admin@demo.haltless.test" in out.getvalue()

        again = StringIO()
        call_command("seed_demo", stdout=again)
        assert "already exists" in again.getvalue()
        assert Machine.objects.count() == len(DEMO_MACHINES)
        assert SensorReading.objects.count() == sensor_count * per_sensor
        assert User.objects.filter(tenant=tenant).count() == 3
