"""Fixtures for the users app: a second admin, a tenant's inactive user, a foreign user."""

import pytest

from users.models import Role
from users.tests.factories import UserFactory
from users.tests.helpers import TOKEN_URL


@pytest.fixture
def second_admin(tenant):
    return UserFactory(tenant=tenant, role=Role.ADMIN, email="second-admin@acme.test")


@pytest.fixture
def inactive_user(tenant):
    return UserFactory(tenant=tenant, role=Role.OPERATOR, email="gone@acme.test", is_active=False)


@pytest.fixture
def other_tenant_user(other_tenant):
    return UserFactory(tenant=other_tenant, role=Role.OPERATOR, email="operator@other.test")


@pytest.fixture
def login(api_client):
    """login(email, password) -> the response of POST /auth/token."""

    def do(email: str, password: str):
        return api_client.post(TOKEN_URL, {"email": email, "password": password}, format="json")

    return do
