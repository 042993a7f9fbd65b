import factory

from audit.models import AuditEvent
from tenants.tests.factories import TenantFactory


class AuditEventFactory(factory.django.DjangoModelFactory):
    """An event; `occurred_at` is set by the database, move it with a queryset update."""

    class Meta:
        model = AuditEvent

    tenant = factory.SubFactory(TenantFactory)
    actor_type = AuditEvent.ActorType.USER
    actor_id = factory.Faker("uuid4", cast_to=None)
    actor_label = factory.Faker("email")
    action = "user.create"
    target_type = "user"
    target_id = factory.Faker("uuid4")
    target_label = factory.Faker("email")
    changes = factory.LazyFunction(dict)
    client_ip = "192.0.2.10"
