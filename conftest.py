"""Fixtures shared by every app's tests: tenants, role-named users, API keys, clients."""

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from apikeys.services import IssuedApiKey, api_key_create
from core.caller import Caller
from core.tests.browser import AdminBrowser, save_failure_artefacts, start_driver
from haltless.testing import client_for_key, client_for_user
from tenants.tests.factories import TenantFactory
from users.models import Role, User
from users.tests.factories import DEFAULT_PASSWORD, UserFactory


@pytest.fixture(autouse=True)
def _clear_cache():
    # Throttle histories, rate-limit windows and similar live in the cache and in
    # process-local state; tests must not share them.
    from apikeys import observed, ratelimit, redis_store, sampling

    def clear():
        cache.clear()
        ratelimit.local_window.clear()
        sampling.clear()
        observed.local_buffer.take()
        redis_store.reset()

    clear()
    yield
    clear()


@pytest.fixture(autouse=True)
def _no_random_throttle_sweep(monkeypatch):
    # The throttle table's sweep runs on a random 1 in 200 hits: one query more, now and then,
    # which would make every pinned query count flaky. core/tests/test_throttling.py tests it.
    monkeypatch.setattr("core.throttling._SWEEP_ONE_IN", None)


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory):
    """The service under gunicorn on a free loopback port, with a database of its own
    (see core/tests/live_stack.py): for tests through the front door, over HTTP only."""
    from core.tests.live_stack import start_live_stack

    stack, stop = start_live_stack(tmp_path_factory.mktemp("live-stack"))
    yield stack
    stop()


@pytest.fixture
def password() -> str:
    return DEFAULT_PASSWORD


@pytest.fixture
def tenant(db):
    return TenantFactory(name="Acme Plant")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(name="Other Works")


@pytest.fixture
def admin_user(tenant):
    return UserFactory(tenant=tenant, role=Role.ADMIN, email="admin@acme.test")


@pytest.fixture
def operator_user(tenant):
    return UserFactory(tenant=tenant, role=Role.OPERATOR, email="operator@acme.test")


@pytest.fixture
def viewer_user(tenant):
    return UserFactory(tenant=tenant, role=Role.VIEWER, email="viewer@acme.test")


@pytest.fixture
def other_tenant_admin(other_tenant):
    return UserFactory(tenant=other_tenant, role=Role.ADMIN, email="admin@other.test")


@pytest.fixture
def staff_user(db):
    """Platform staff: a superuser with no tenant."""
    return User.objects.create_superuser("staff@haltless.test", "Staff-Password-42!")


@pytest.fixture
def staff_client(staff_user):
    """The Django admin as platform staff (logged in directly: for unit tests of admin pages)."""
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def api_client() -> APIClient:
    """A client with no credentials."""
    return APIClient()


@pytest.fixture
def admin_client(admin_user) -> APIClient:
    return client_for_user(admin_user)


@pytest.fixture
def operator_client(operator_user) -> APIClient:
    return client_for_user(operator_user)


@pytest.fixture
def viewer_client(viewer_user) -> APIClient:
    return client_for_user(viewer_user)


@pytest.fixture
def other_tenant_admin_client(other_tenant_admin) -> APIClient:
    return client_for_user(other_tenant_admin)


@pytest.fixture
def make_api_key(tenant):
    """Issue a key: make_api_key(scopes=..., tenant=..., name=..., expires_at=...)."""

    def make(*, scopes="edge_agent", tenant=tenant, name="test key", expires_at=None) -> IssuedApiKey:
        return api_key_create(
            by=Caller.system(tenant_id=tenant.id), name=name, scopes_requested=scopes, expires_at=expires_at
        )

    return make


@pytest.fixture
def api_key(make_api_key) -> IssuedApiKey:
    """An `edge_agent` key (ingest, agent) of `tenant`; `.secret` is the plaintext."""
    return make_api_key()


@pytest.fixture
def read_only_key(make_api_key) -> IssuedApiKey:
    return make_api_key(scopes="read_only", name="dashboard")


@pytest.fixture
def key_client(api_key) -> APIClient:
    return client_for_key(api_key.secret)


def pytest_collection_modifyitems(config, items):
    """Skip what this database or environment cannot run, saying why."""
    import os

    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    has_broker = bool(os.environ.get("CELERY_BROKER_URL"))
    fault_suite = os.environ.get("HALTLESS_FAULT_SUITE") == "1"
    for item in items:
        if "faults" in item.keywords and not fault_suite:
            item.add_marker(pytest.mark.skip(reason="the fault suite runs with `make test-faults`"))
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)"))
        if "celery_worker" in item.keywords and not (on_postgres and has_broker):
            item.add_marker(pytest.mark.skip(reason="needs DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL"))


def pytest_configure(config):
    import os

    # Live servers (the admin over HTTP, the browser suite) listen on loopback, on a free port.
    os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")


# --- The browser suite (marker `browser`): headless Chromium at a live server ----------------
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test, so the browser fixture knows whether it failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def _chromium():
    driver = start_driver()
    yield driver
    driver.quit()


@pytest.fixture
def browser(request, _chromium, live_server, transactional_db) -> AdminBrowser:
    """Headless Chromium at the live server, with no cookies from an earlier test."""
    _chromium.get(live_server.url + "/healthz")
    _chromium.delete_all_cookies()
    yield AdminBrowser(_chromium, live_server.url)
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        path = save_failure_artefacts(_chromium, request.node.nodeid)
        print(f"browser: screenshot and page of the failure in {path.parent}")
