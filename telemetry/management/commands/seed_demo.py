import math
import random
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from core.caller import Caller
from core.progress import Progress
from telemetry.models import Machine, Sensor
from telemetry.services import machine_create, readings_bulk_insert
from tenants.models import Tenant
from tenants.services import tenant_create
from users.models import Role
from users.services import user_create

DEMO_TENANT = "Demo Plant"
DEMO_PASSWORD = "haltless-demo-2026"
DEMO_USERS = [
    ("admin@demo.haltless.test", Role.ADMIN, "Ada Admin"),
    ("operator@demo.haltless.test", Role.OPERATOR, "Otto Operator"),
    ("viewer@demo.haltless.test", Role.VIEWER, "Vera Viewer"),
]
K = Sensor.Kind
# external_id, name, location, sensors as (key, kind, typical value, daily swing, noise)
DEMO_MACHINES = [
    (
        "press-01",
        "Hydraulic press 1",
        "Hall A",
        [
            ("bearing_temp", K.TEMPERATURE, 62.0, 6.0, 0.4),
            ("oil_pressure", K.PRESSURE, 180.0, 12.0, 1.5),
            ("frame_vibration", K.VIBRATION, 2.8, 0.6, 0.15),
            ("motor_current", K.CURRENT, 41.0, 5.0, 0.8),
        ],
    ),
    (
        "lathe-02",
        "CNC lathe 2",
        "Hall A",
        [
            ("spindle_temp", K.TEMPERATURE, 48.0, 5.0, 0.3),
            ("spindle_vibration", K.VIBRATION, 1.6, 0.4, 0.1),
            ("spindle_speed", K.SPEED, 2400.0, 300.0, 15.0),
            ("motor_current", K.CURRENT, 18.0, 3.0, 0.5),
        ],
    ),
    (
        "compressor-03",
        "Air compressor 3",
        "Utility room",
        [
            ("outlet_temp", K.TEMPERATURE, 85.0, 8.0, 0.6),
            ("tank_pressure", K.PRESSURE, 8.5, 0.7, 0.05),
            ("motor_current", K.CURRENT, 55.0, 6.0, 1.0),
            ("duty_cycle", K.OTHER, 0.62, 0.2, 0.03),
        ],
    ),
]
DEMO_HISTORY = timedelta(days=7)
DEMO_STEP = timedelta(minutes=1)


def demo_readings(sensor: Sensor, typical: float, swing: float, noise: float, end, rng: random.Random):
    """A week of one-minute values: a daily cycle, a little noise."""
    steps = int(DEMO_HISTORY / DEMO_STEP)
    start = end - steps * DEMO_STEP
    for i in range(steps + 1):
        phase = 2 * math.pi * i / (24 * 60)
        yield sensor.pk, start + i * DEMO_STEP, round(typical + swing * math.sin(phase) + rng.gauss(0, noise), 3)


class Command(BaseCommand):
    help = (
        "Create the demo tenant with an admin, an operator and a viewer, three machines with sensors "
        "and a week of one-minute readings (each only once), and print how to log in."
    )

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(name=DEMO_TENANT).first()
        if tenant is not None:
            self.stdout.write(f"The demo tenant {DEMO_TENANT!r} already exists.")
        else:
            with transaction.atomic():
                tenant = tenant_create(name=DEMO_TENANT, tier="professional")
                by = Caller.system(tenant_id=tenant.pk)
                for email, role, full_name in DEMO_USERS:
                    user_create(by=by, email=email, password=DEMO_PASSWORD, full_name=full_name, role=role)
            self.stdout.write(self.style.SUCCESS(f"Created the demo tenant {DEMO_TENANT!r}."))
        self._seed_machines(tenant)
        self.stdout.write("Log in with POST /api/v1/auth/token as one of (password " + DEMO_PASSWORD + "):")
        for email, role, _ in DEMO_USERS:
            self.stdout.write(f"  {role:<9} {email}")
        admin_email = next(email for email, role, _ in DEMO_USERS if role == Role.ADMIN)
        self.stdout.write(
            f"The tenant admin's console is /admin/: log in there as {admin_email} with the same password "
            "(operators and viewers use the API; platform staff: manage.py createsuperuser)."
        )

    def _seed_machines(self, tenant: Tenant) -> None:
        existing = set(Machine.objects.filter(tenant=tenant).values_list("external_id", flat=True))
        end = timezone.now().replace(second=0, microsecond=0)
        rng = random.Random(2026)  # noqa: S311 - demo values, not secrets
        missing = [machine for machine in DEMO_MACHINES if machine[0] not in existing]
        per_sensor = int(DEMO_HISTORY / DEMO_STEP) + 1
        total = per_sensor * sum(len(sensors) for *_, sensors in missing)
        with Progress(stderr=self.stderr, label="Seeding readings", total=total, unit="readings") as progress:
            for external_id, name, location, sensors in missing:
                progress.note(external_id)
                with transaction.atomic():
                    machine = machine_create(
                        by=Caller.system(tenant_id=tenant.pk),
                        external_id=external_id,
                        name=name,
                        location=location,
                        sensors=[(key, kind) for key, kind, *_ in sensors],
                    )
                    by_key = {sensor.key: sensor for sensor in machine.sensors.all()}
                    for key, _, typical, swing, noise in sensors:
                        rows = demo_readings(by_key[key], typical, swing, noise, end, rng)
                        readings_bulk_insert(tenant_id=tenant.id, rows=progress.counting(rows))
                created = (
                    f"Created machine {external_id!r} with {len(sensors)} sensors and a week of one-minute readings."
                )
                self.stdout.write(self.style.SUCCESS(created))
        self.stdout.write(
            f"Seeded {len(missing)} machine(s) and {progress.count} readings in {progress.seconds:.1f} s."
        )
