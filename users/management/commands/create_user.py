from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.caller import Caller
from core.management import one_line_error
from tenants.models import Tenant
from tenants.selectors import tenant_get_by_id_or_name
from users.models import Role
from users.services import user_create


class Command(BaseCommand):
    help = "Create a user in a tenant and print the user's id."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant id or name")
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--role", default=Role.VIEWER, help="admin, operator or viewer (default viewer)")
        parser.add_argument("--full-name", default="")

    def handle(self, *args, tenant: str, email: str, password: str, role: str, full_name: str, **options):
        try:
            tenant_obj = tenant_get_by_id_or_name(tenant)
            by = Caller.system(tenant_id=tenant_obj.pk)
            user = user_create(by=by, email=email, password=password, full_name=full_name, role=role)
        except Tenant.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            raise CommandError(one_line_error(exc)) from None
        self.stdout.write(str(user.id))
