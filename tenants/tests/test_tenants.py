import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError

from tenants import tiers
from tenants.models import Tenant
from tenants.selectors import tenant_get_by_id_or_name
from users.models import User

pytestmark = pytest.mark.django_db


class TestCreateTenantCommand:
    def test_prints_the_new_tenant_id(self, capsys):
        call_command("create_tenant", "North Mill", "--tier", "starter")
        tenant = Tenant.objects.get(name="North Mill")
        assert capsys.readouterr().out.strip() == str(tenant.id)
        assert (tenant.tier, tenant.retention_days) == ("starter", 30)

    def test_default_tier_is_free(self):
        call_command("create_tenant", "South Mill")
        assert Tenant.objects.get(name="South Mill").retention_days == 7

    def test_unknown_tier_fails_with_one_line(self):
        with pytest.raises(CommandError) as excinfo:
            call_command("create_tenant", "East Mill", "--tier", "platinum")
        message = str(excinfo.value)
        assert message.startswith("tier: Unknown tier 'platinum'")
        assert "\n" not in message
        assert not Tenant.objects.filter(name="East Mill").exists()

    def test_duplicate_name_in_any_case_fails(self, tenant):
        with pytest.raises(CommandError, match="already exists"):
            call_command("create_tenant", tenant.name.upper())
        assert Tenant.objects.count() == 1

    def test_blank_name_fails(self):
        with pytest.raises(CommandError, match="needs a name"):
            call_command("create_tenant", "   ")


class TestTiersAreConfiguration:
    def test_retention_window_follows_settings(self, tenant, settings):
        settings.HALTLESS_TIERS = {**settings.HALTLESS_TIERS, "professional": 120}
        assert tenant.retention_days == 120

    def test_contract_defaults(self, settings):
        assert {name: tiers.tier_windows(name) for name in settings.HALTLESS_TIERS} == {
            "free": {"readings": 7, "heartbeats": 7, "rollups": 90},
            "starter": {"readings": 30, "heartbeats": 30, "rollups": 365},
            "professional": {"readings": 90, "heartbeats": 90, "rollups": 730},
            "enterprise": {"readings": 365, "heartbeats": 365, "rollups": 1825},
        }


class TestTenantLookup:
    def test_by_id_and_by_name_any_case(self, tenant):
        assert tenant_get_by_id_or_name(str(tenant.id)) == tenant
        assert tenant_get_by_id_or_name("acme plant") == tenant

    def test_unknown_raises_with_a_message(self, db):
        with pytest.raises(Tenant.DoesNotExist, match="No tenant with id or name"):
            tenant_get_by_id_or_name(str(uuid.uuid4()))


class TestUserModelConstraints:
    def test_email_is_unique_regardless_of_case_in_the_database(self, admin_user):
        # Bypass the normalising manager: the database itself must refuse it.
        with pytest.raises(IntegrityError):
            User.objects.bulk_create([User(tenant=admin_user.tenant, email=admin_user.email.upper())])

    def test_a_tenant_user_needs_a_tenant(self, db):
        with pytest.raises(IntegrityError):
            User.objects.bulk_create([User(email="loose@acme.test", is_staff=False)])

    def test_platform_staff_need_no_tenant(self, db):
        staff = User.objects.create_superuser("root@haltless.test", "A-long-staff-password-1")
        assert staff.tenant is None and staff.is_staff


class TestTheServicesWords:
    """What tenants.services refuses, word for word (the command prints it on one line)."""

    @pytest.mark.parametrize(
        ("name", "tier", "message"),
        [
            ("  ", "free", "name: A tenant needs a name."),
            (
                "West Mill",
                "platinum",
                "tier: Unknown tier 'platinum'; choose one of: free, starter, professional, enterprise.",
            ),
            ("ACME PLANT", "free", "name: A tenant named 'ACME PLANT' already exists."),
        ],
    )
    def test_refusals(self, tenant, name, tier, message):
        with pytest.raises(CommandError) as excinfo:
            call_command("create_tenant", name, "--tier", tier)
        assert str(excinfo.value) == message
