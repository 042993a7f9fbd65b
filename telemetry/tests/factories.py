from datetime import UTC, datetime, timedelta

import factory

from telemetry.models import Machine, Sensor, SensorReading
from tenants.tests.factories import TenantFactory


class MachineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Machine

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"machine-{n}")
    name = factory.Sequence(lambda n: f"Machine {n}")
    location = "Hall A"


class SensorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sensor

    machine = factory.SubFactory(MachineFactory)
    key = factory.Sequence(lambda n: f"sensor_{n}")
    kind = Sensor.Kind.TEMPERATURE


class SensorReadingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SensorReading

    sensor = factory.SubFactory(SensorFactory)
    tenant_id = factory.LazyAttribute(lambda o: o.sensor.machine.tenant_id)
    ts = factory.Sequence(lambda n: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n))
    value = 20.0
