import factory

from retention.models import RetentionRun
from telemetry.models import Machine, Sensor
from tenants.tests.factories import TenantFactory


class MachineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Machine

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"press-{n}")
    name = factory.Sequence(lambda n: f"Press {n}")


class SensorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sensor

    machine = factory.SubFactory(MachineFactory)
    key = factory.Sequence(lambda n: f"bearing_temp_{n}")
    kind = Sensor.Kind.TEMPERATURE


class RetentionRunFactory(factory.django.DjangoModelFactory):
    """A finished run by default: an active one would take the tenant's only active slot."""

    class Meta:
        model = RetentionRun

    tenant = factory.SubFactory(TenantFactory)
    trigger = RetentionRun.Trigger.MANUAL
    status = RetentionRun.Status.SUCCEEDED
