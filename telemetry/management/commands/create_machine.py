from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.caller import Caller
from core.management import one_line_error
from telemetry.models import Sensor
from telemetry.services import machine_create
from tenants.models import Tenant
from tenants.selectors import tenant_get_by_id_or_name


def sensor_spec(value: str) -> tuple[str, str]:
    key, sep, kind = value.rpartition(":")
    if not sep or not key.strip() or not kind:
        raise CommandError(f"--sensor {value!r}: expected KEY:KIND, e.g. bearing_temp:temperature.")
    return key, kind


class Command(BaseCommand):
    help = "Create a machine (and its sensors) in a tenant and print the machine's id."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant id or name")
        parser.add_argument("--external-id", required=True, help="what the edge agent calls the machine")
        parser.add_argument("--name", required=True)
        parser.add_argument("--location", default="")
        parser.add_argument(
            "--sensor",
            action="extend",
            nargs="+",
            default=[],
            metavar="KEY:KIND",
            help=f"a sensor, repeatable; KIND is one of: {', '.join(Sensor.Kind.values)}",
        )

    def handle(self, *args, tenant: str, external_id: str, name: str, location: str, sensor: list[str], **options):
        sensors = [sensor_spec(value) for value in sensor]
        try:
            machine = machine_create(
                by=Caller.system(tenant_id=tenant_get_by_id_or_name(tenant).pk),
                external_id=external_id,
                name=name,
                location=location,
                sensors=sensors,
            )
        except Tenant.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            raise CommandError(one_line_error(exc)) from None
        self.stdout.write(str(machine.id))
