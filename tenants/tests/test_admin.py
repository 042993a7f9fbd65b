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
