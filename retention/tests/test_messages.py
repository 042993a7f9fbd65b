"""Retention's user-visible messages, pinned as literal text through the front doors."""

import pytest
from django.test import Client
from django.utils import timezone

from retention.models import RetentionHold, RetentionRun
from retention.tests.factories import RetentionRunFactory

pytestmark = pytest.mark.django_db

RUN_NOW = "/admin/retention/retentionrun/run-now/"


@pytest.fixture
def console(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_a_preview_under_an_unknown_tier(admin_client):
    response = admin_client.get("/api/v1/settings/admin/retention/preview", {"tier": "platinum"})
    assert response.status_code == 400
    assert response.json() == {
        "tier": ["Unknown tier 'platinum'; choose one of: free, starter, professional, enterprise."]
    }


@pytest.mark.django_db(transaction=True)
def test_run_now_says_what_it_did(console, tenant):
    # Without a broker the run is carried out when the request's transaction commits.
    response = console.post(RUN_NOW, follow=True)
    assert messages_of(response) == ["Retention run requested; it is succeeded."]


def test_run_now_while_a_run_is_under_way(console, tenant):
    RetentionRunFactory(tenant=tenant, status=RetentionRun.Status.RUNNING)
    response = console.post(RUN_NOW, follow=True)
    assert messages_of(response) == ["A retention run is already under way for this tenant."]
    assert RetentionRun.objects.count() == 1


def test_run_now_with_the_broker_down(console, tenant, settings, monkeypatch):
    from kombu.exceptions import OperationalError

    from retention import tasks

    settings.CELERY_TASK_ALWAYS_EAGER = False

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(tasks.retention_run_execute, "apply_async", refuse)
    response = console.post(RUN_NOW, follow=True)
    assert messages_of(response) == [
        "Background jobs cannot be queued right now; nothing was started. Try again shortly."
    ]
    assert not RetentionRun.objects.exists()


def test_releasing_holds_says_how_many(console, tenant):
    holds = [
        RetentionHold.objects.create(tenant=tenant, reason=f"case {n}", starts_at=timezone.now()) for n in range(2)
    ]
    response = console.post(
        "/admin/retention/retentionhold/",
        {"action": "release_holds", "_selected_action": [str(hold.pk) for hold in holds]},
        follow=True,
    )
    assert messages_of(response) == ["2 hold(s) released."]
