import uuid

from tenants.models import Tenant


def tenant_get_by_id_or_name(value: str) -> Tenant:
    """The tenant an operator names on the command line, by id or by name.

    Raises Tenant.DoesNotExist with a message fit for a one-line error.
    """
    try:
        return Tenant.objects.get(pk=uuid.UUID(value))
    except (ValueError, Tenant.DoesNotExist):
        pass
    try:
        return Tenant.objects.get(name__iexact=value.strip())
    except Tenant.DoesNotExist:
        raise Tenant.DoesNotExist(f"No tenant with id or name {value!r}.") from None
