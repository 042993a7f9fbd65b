from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.management import one_line_error
from tenants.services import tenant_create


class Command(BaseCommand):
    help = "Create a tenant and print its id."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--tier", default=None, help="free, starter, professional or enterprise")

    def handle(self, *args, name: str, tier: str | None, **options):
        try:
            tenant = tenant_create(name=name, tier=tier)
        except ValidationError as exc:
            raise CommandError(one_line_error(exc)) from None
        self.stdout.write(str(tenant.id))
