"""The tenant delete page counts what would go instead of loading it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from telemetry.models import SensorReading
from telemetry.services import readings_bulk_insert
from telemetry.tests.factories import MachineFactory, SensorFactory
from tenants.models import Tenant
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def with_readings(tenant, count: int) -> None:
    sensor = SensorFactory(machine=MachineFactory(tenant=tenant), key="t", kind="temperature")
    start = timezone.now() - timedelta(days=1)
    readings_bulk_insert(
        tenant_id=tenant.id, rows=[(sensor.pk, start + timedelta(seconds=i), 1.0) for i in range(count)]
    )


class TestDeletePage:
    def test_counts_the_readings_and_loads_none(self, staff_client, django_assert_max_num_queries):
        tenant = TenantFactory(name="Closing Plant")
        with_readings(tenant, 300)
        with django_assert_max_num_queries(25):
            response = staff_client.get(f"/admin/tenants/tenant/{tenant.pk}/delete/")
        assert response.status_code == 200
        page = response.content.decode()
        assert "Sensor readings: 300" in page
        assert "Machines: 1" in page
        assert "Sensor reading:" not in page  # no row is listed
        assert staff_client.post(f"/admin/tenants/tenant/{tenant.pk}/delete/", {"post": "yes"}).status_code == 302
        assert not Tenant.objects.filter(pk=tenant.pk).exists()
        assert not SensorReading.objects.exists()

    def test_a_tenant_with_people_is_protected_and_says_why(self, staff_client, tenant, admin_user):
        page = staff_client.get(f"/admin/tenants/tenant/{tenant.pk}/delete/").content.decode()
        assert "Users: 1 (deactivate, do not delete, the tenant&#x27;s people)" in page
        staff_client.post(f"/admin/tenants/tenant/{tenant.pk}/delete/", {"post": "yes"})
        assert Tenant.objects.filter(pk=tenant.pk).exists()


class TestAddAndChange:
    """The tenant pages save through tenants.services: the same rules as `create_tenant`."""

    def test_add(self, staff_client):
        response = staff_client.post("/admin/tenants/tenant/add/", {"name": " North Plant ", "tier": "starter"})
        assert response.status_code == 302
        assert Tenant.objects.get(name="North Plant").tier == "starter"

    def test_a_name_taken_in_another_case_is_a_form_error(self, staff_client, tenant):
        response = staff_client.post("/admin/tenants/tenant/add/", {"name": tenant.name.upper(), "tier": "free"})
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["name"] == [
            f"A tenant named {tenant.name.upper()!r} already exists."
        ]
        assert Tenant.objects.count() == 1

    def test_a_tier_change_lowers_the_retention_policy_to_the_new_caps(self, staff_client, staff_user, tenant):
        from audit.models import AuditEvent
        from retention.models import RetentionPolicy

        tenant.tier = "enterprise"
        tenant.save()
        RetentionPolicy.objects.create(tenant=tenant, readings_days=60)
        response = staff_client.post(
            f"/admin/tenants/tenant/{tenant.pk}/change/", {"name": tenant.name, "tier": "starter"}
        )
        assert response.status_code == 302
        assert RetentionPolicy.objects.get(tenant=tenant).readings_days == 30
        clamp = AuditEvent.objects.get(action="retention_policy.update")
        assert (clamp.tenant_id, clamp.actor_id) == (tenant.pk, staff_user.pk)
        assert clamp.changes == {"clamped_to_tier": "starter", "readings_days": {"from": 60, "to": 30}}
