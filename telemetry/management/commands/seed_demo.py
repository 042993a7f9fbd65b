from django.core.management.base import BaseCommand
from django.db import transaction

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


class Command(BaseCommand):
    help = "Create the demo tenant with an admin, an operator and a viewer (once), and print how to log in."

    def handle(self, *args, **options):
        if Tenant.objects.filter(name=DEMO_TENANT).exists():
            self.stdout.write(f"The demo tenant {DEMO_TENANT!r} already exists.")
        else:
            with transaction.atomic():
                tenant = tenant_create(name=DEMO_TENANT, tier="professional")
                for email, role, full_name in DEMO_USERS:
                    user_create(tenant=tenant, email=email, password=DEMO_PASSWORD, full_name=full_name, role=role)
            self.stdout.write(self.style.SUCCESS(f"Created the demo tenant {DEMO_TENANT!r}."))
        self.stdout.write("Log in with POST /api/v1/auth/token as one of (password " + DEMO_PASSWORD + "):")
        for email, role, _ in DEMO_USERS:
            self.stdout.write(f"  {role:<9} {email}")
