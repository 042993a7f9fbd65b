from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys.tests.factories import ApiKeyFactory
from haltless.testing import key_header_client


@pytest.fixture
def expired_key(tenant):
    return ApiKeyFactory(tenant=tenant, name="expired", expires_at=timezone.now() - timedelta(hours=1))


@pytest.fixture
def revoked_key(tenant):
    return ApiKeyFactory(tenant=tenant, name="revoked", revoked_at=timezone.now() - timedelta(minutes=5))


@pytest.fixture
def other_tenant_key(make_api_key, other_tenant):
    return make_api_key(tenant=other_tenant, name="theirs", scopes="read_only")


@pytest.fixture(params=["bearer", "x-api-key"])
def key_header(request) -> str:
    """Both ways a key travels."""
    return request.param


@pytest.fixture
def client_with_key():
    """client_with_key(secret, header="bearer"|"x-api-key") -> APIClient."""

    def make(secret: str, header: str = "bearer") -> APIClient:
        return key_header_client(secret, header)

    return make
