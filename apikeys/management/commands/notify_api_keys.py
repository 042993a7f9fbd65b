from django.core.management.base import BaseCommand, CommandError

from apikeys.notices import api_key_notices_send
from core.progress import Progress
from tenants.models import Tenant
from tenants.selectors import tenant_get_by_id_or_name


class Command(BaseCommand):
    help = (
        "Send the due api_key.expiring and api_key.unused webhook events (each key and threshold once) "
        "and print, per tenant, how many went out. The daily beat job does the same."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="tenant id or name (default: every tenant with a webhook URL)")

    def handle(self, *args, tenant: str | None = None, **options):
        tenant_id = None
        if tenant:
            try:
                tenant_id = tenant_get_by_id_or_name(tenant).id
            except Tenant.DoesNotExist as exc:
                raise CommandError(str(exc)) from None
        with Progress(stderr=self.stderr, label="Notifying", unit="tenants") as progress:
            counts = api_key_notices_send(tenant_id=tenant_id, on_tenant_done=lambda *_: progress.advance())
        for each_tenant_id, expiring, unused in counts.tenants:
            self.stdout.write(f"{each_tenant_id}: {expiring} expiring, {unused} unused")
        self.stdout.write(
            f"sent {counts.expiring} expiring and {counts.unused} unused notices "
            f"({len(counts.tenants)} tenant(s), {progress.seconds:.1f} s)"
        )
