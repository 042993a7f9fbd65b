import factory

from retention.models import RetentionRun
from tenants.tests.factories import TenantFactory


class RetentionRunFactory(factory.django.DjangoModelFactory):
    """A finished run by default: an active one would take the tenant's only active slot."""

    class Meta:
        model = RetentionRun

    tenant = factory.SubFactory(TenantFactory)
    trigger = RetentionRun.Trigger.MANUAL
    status = RetentionRun.Status.SUCCEEDED
