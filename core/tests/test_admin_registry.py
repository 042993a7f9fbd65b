"""Rules every page of the admin keeps, checked over the admin's registry (a new page is covered)."""

import uuid

import pytest
from django.contrib import admin
from django.test import RequestFactory

from users.models import User

pytestmark = pytest.mark.django_db


def tenant_owned_admins():
    for model, model_admin in admin.site._registry.items():
        if any(field.name == "tenant" and field.concrete for field in model._meta.get_fields()):
            yield pytest.param(model_admin, id=model._meta.label)


@pytest.fixture
def staff_request(db):
    request = RequestFactory().get("/admin/")
    request.user = User.objects.create_superuser("staff@haltless.test", "Staff-Password-42!")
    return request


@pytest.mark.parametrize("model_admin", list(tenant_owned_admins()))
def test_a_rows_tenant_never_changes_after_creation(model_admin, staff_request):
    existing = model_admin.model(tenant_id=uuid.uuid4())
    form = model_admin.get_form(staff_request, obj=existing)
    assert "tenant" not in form.base_fields
