import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from core.permissions import ADMIN_REQUIRED, USER_LOGIN_REQUIRED
from haltless.testing import client_for_key, client_for_user
from retention import services, tasks
from retention.models import RetentionRun
from retention.tests.factories import RetentionRunFactory
from retention.tests.helpers import reading_times

RUN_URL = "/api/v1/settings/admin/retention/run"
RUNS_URL = "/api/v1/settings/admin/retention/runs"

Status = RetentionRun.Status


def run_url(run_id) -> str:
    return f"{RUNS_URL}/{run_id}"


@pytest.fixture
def no_enqueue(monkeypatch):
    """Keep requested runs queued: record what would have been sent to a worker."""
    sent = []
    monkeypatch.setattr(tasks, "retention_run_dispatch", lambda *, run_id: sent.append(run_id))
    return sent


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery")
class TestRunWithoutBroker:
    """The embedded default: the run is carried out before the response is sent."""

    def test_admin_run_has_finished_when_the_response_arrives(self, admin_client, tenant, sensor, add_readings):
        now = timezone.now()
        add_readings(sensor, [now - timedelta(days=91), now - timedelta(days=89)])

        response = admin_client.post(RUN_URL, {}, format="json")

        assert response.status_code == 202
        run = RetentionRun.objects.get()
        assert response.json() == {"run_id": str(run.pk), "status": "succeeded"}
        assert response.headers["Location"] == f"http://testserver{run_url(run.pk)}"
        assert (run.trigger, run.requested_by_id, run.readings_deleted) == ("manual", tenant.users.get().pk, 1)
        assert reading_times(tenant.pk) == [now - timedelta(days=89)]


@pytest.mark.django_db
class TestRequestRun:
    def test_admin_gets_202_with_the_queued_run(self, admin_client, admin_user, no_enqueue):
        response = admin_client.post(RUN_URL, format="json")

        assert response.status_code == 202
        run = RetentionRun.objects.get()
        assert response.json() == {"run_id": str(run.pk), "status": "queued"}
        assert (run.tenant_id, run.requested_by_id) == (admin_user.tenant_id, admin_user.pk)
        assert no_enqueue == [run.pk]

    def test_enqueues_only_after_the_transaction_commits(
        self, admin_client, django_capture_on_commit_callbacks, monkeypatch
    ):
        sent = []
        monkeypatch.setattr(
            "retention.tasks.retention_run_execute.apply_async", lambda args, **options: sent.append(args)
        )

        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = admin_client.post(RUN_URL, format="json")

        assert response.status_code == 202
        assert len(callbacks) == 1
        assert sent == [[response.json()["run_id"]]]

    def test_a_second_request_returns_the_active_run(self, admin_client, tenant, no_enqueue):
        first = admin_client.post(RUN_URL, format="json")
        second = admin_client.post(RUN_URL, format="json")

        assert second.status_code == 202
        assert second.json() == first.json()
        assert RetentionRun.objects.filter(tenant=tenant).count() == 1
        assert len(no_enqueue) == 1

    def test_another_tenants_active_run_does_not_block(self, admin_client, other_tenant, no_enqueue):
        other = RetentionRunFactory(tenant=other_tenant, status=Status.RUNNING)

        response = admin_client.post(RUN_URL, format="json")

        assert response.status_code == 202
        assert response.json()["run_id"] != str(other.pk)

    def test_unknown_field_is_400(self, admin_client, no_enqueue):
        response = admin_client.post(RUN_URL, {"dry_run": True}, format="json")

        assert response.status_code == 400
        assert response.json() == {"dry_run": ["Unknown field."]}
        assert not RetentionRun.objects.exists()

    def test_trailing_slash_works_without_redirect(self, admin_client, no_enqueue):
        response = admin_client.post(RUN_URL + "/", format="json")

        assert response.status_code == 202

    def test_get_is_405(self, admin_client):
        response = admin_client.get(RUN_URL)

        assert response.status_code == 405
        assert response.json() == {"detail": 'Method "GET" not allowed.'}


@pytest.mark.django_db
class TestAccess:
    @pytest.mark.parametrize("client_name", ["operator_client", "viewer_client"])
    @pytest.mark.parametrize(("method", "url"), [("post", RUN_URL), ("get", RUNS_URL)])
    def test_non_admins_are_403(self, request, client_name, method, url, no_enqueue):
        response = getattr(request.getfixturevalue(client_name), method)(url, format="json")

        assert response.status_code == 403
        assert response.json() == {"detail": ADMIN_REQUIRED}
        assert not RetentionRun.objects.exists()

    def test_non_admin_cannot_read_a_run_either(self, viewer_client, tenant):
        run = RetentionRunFactory(tenant=tenant)

        response = viewer_client.get(run_url(run.pk))

        assert response.status_code == 403
        assert response.json() == {"detail": ADMIN_REQUIRED}

    @pytest.mark.parametrize(("method", "url"), [("post", RUN_URL), ("get", RUNS_URL)])
    def test_api_keys_are_refused(self, make_api_key, method, url, no_enqueue):
        client = client_for_key(make_api_key(scopes=["ingest", "agent", "read:machines", "read:sensors"]).secret)

        response = getattr(client, method)(url, format="json")

        assert response.status_code == 403
        assert response.json() == {"detail": USER_LOGIN_REQUIRED}
        assert not RetentionRun.objects.exists()

    @pytest.mark.parametrize(("method", "url"), [("post", RUN_URL), ("get", RUNS_URL)])
    def test_anonymous_is_401(self, api_client, db, method, url):
        response = getattr(api_client, method)(url, format="json")

        assert response.status_code == 401
        assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.django_db
class TestListRuns:
    def test_plain_array_newest_first_of_the_callers_tenant_only(self, admin_client, tenant, other_tenant):
        now = timezone.now()
        older = RetentionRunFactory(tenant=tenant, created_at=now - timedelta(days=2))
        newer = RetentionRunFactory(tenant=tenant, status=Status.FAILED, created_at=now - timedelta(days=1))
        RetentionRunFactory(tenant=other_tenant, created_at=now)

        response = admin_client.get(RUNS_URL)

        assert response.status_code == 200
        assert [item["id"] for item in response.json()] == [str(newer.pk), str(older.pk)]

    def test_is_bounded_to_the_latest_hundred(self, admin_client, tenant):
        now = timezone.now()
        RetentionRun.objects.bulk_create(
            RetentionRun(tenant=tenant, trigger="schedule", status="succeeded", created_at=now - timedelta(days=d))
            for d in range(105)
        )

        response = admin_client.get(RUNS_URL)

        assert response.status_code == 200
        assert len(response.json()) == 100
        assert response.json()[-1]["created_at"] == (now - timedelta(days=99)).isoformat().replace("+00:00", "Z")

    def test_empty_list(self, admin_client):
        response = admin_client.get(RUNS_URL)

        assert (response.status_code, response.json()) == (200, [])


@pytest.mark.django_db
class TestRunDetail:
    def test_shows_status_cutoff_counts_and_times(self, admin_client, admin_user, tenant):
        cutoff = timezone.now() - timedelta(days=90)
        run = RetentionRunFactory(
            tenant=tenant,
            requested_by=admin_user,
            cutoff=cutoff,
            retention_days=90,
            readings_deleted=1200,
            heartbeats_deleted=34,
            started_at=cutoff + timedelta(days=90),
            finished_at=cutoff + timedelta(days=90, seconds=3),
        )

        response = admin_client.get(run_url(run.pk))

        assert response.status_code == 200
        iso = admin_client.get(RUNS_URL).json()[0]
        assert response.json() == iso
        assert response.json() == {
            "id": str(run.pk),
            "status": "succeeded",
            "trigger": "manual",
            "requested_by": str(admin_user.pk),
            "cutoff": iso["cutoff"],
            "retention_days": 90,
            "cutoffs": None,
            "readings_deleted": 1200,
            "heartbeats_deleted": 34,
            "rollups_deleted": 0,
            "rows_deleted": 1234,
            "partitions_dropped": 0,
            "created_at": iso["created_at"],
            "started_at": iso["started_at"],
            "finished_at": iso["finished_at"],
            "error": None,
        }
        assert iso["cutoff"] == cutoff.isoformat().replace("+00:00", "Z")

    def test_failed_run_shows_its_error(self, admin_client, tenant):
        run = RetentionRunFactory(tenant=tenant, status=Status.FAILED, error="OperationalError: disk full")

        response = admin_client.get(run_url(run.pk) + "/")

        assert response.status_code == 200
        assert (response.json()["status"], response.json()["error"]) == ("failed", "OperationalError: disk full")

    def test_queued_run_has_no_cutoff_yet(self, admin_client, tenant):
        run = RetentionRunFactory(tenant=tenant, status=Status.QUEUED, trigger="schedule")

        body = admin_client.get(run_url(run.pk)).json()

        assert (body["status"], body["trigger"], body["requested_by"], body["cutoff"]) == (
            "queued",
            "schedule",
            None,
            None,
        )

    def test_another_tenants_run_is_404(self, admin_client, other_tenant_admin_client, tenant):
        run = RetentionRunFactory(tenant=tenant)

        response = other_tenant_admin_client.get(run_url(run.pk))

        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}
        assert admin_client.get(run_url(run.pk)).status_code == 200

    @pytest.mark.parametrize("run_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
    def test_unknown_run_is_404(self, admin_client, run_id):
        response = admin_client.get(run_url(run_id))

        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestConcurrentRequests:
    def test_two_simultaneous_requests_make_one_run(self, admin_user, tenant, no_enqueue, monkeypatch):
        # Both requests look for an active run, find none, then insert at the same
        # moment: only the database's partial unique constraint can stop the second.
        both_looked = threading.Barrier(2, timeout=10)
        real_active_run = services._active_run
        looks = []

        def look_then_wait(**kwargs):
            found = real_active_run(**kwargs)
            looks.append(found)
            if found is None:
                both_looked.wait()
            return found

        monkeypatch.setattr(services, "_active_run", look_then_wait)
        responses = []

        def request_run():
            try:
                responses.append(client_for_user(admin_user).post(RUN_URL, format="json"))
            finally:
                connection.close()

        threads = [threading.Thread(target=request_run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert [r.status_code for r in responses] == [202, 202]
        assert responses[0].json() == responses[1].json()
        run = RetentionRun.objects.get()
        assert responses[0].json() == {"run_id": str(run.pk), "status": "queued"}
        assert no_enqueue == [run.pk]
        # The loser's insert was refused, and its second look found the winner's run.
        assert looks == [None, None, run]


@pytest.fixture
def broker_down(monkeypatch, settings):
    """A broker is configured, and it does not answer: publishing fails as kombu fails."""
    from kombu.exceptions import OperationalError

    from retention import tasks

    settings.CELERY_TASK_ALWAYS_EAGER = False

    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

    monkeypatch.setattr(tasks.retention_run_execute, "apply_async", refuse)


@pytest.fixture
def broker_up(monkeypatch, settings):
    from retention import tasks

    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = []
    monkeypatch.setattr(tasks.retention_run_execute, "apply_async", lambda args, **kw: sent.append(args[0]))
    return sent


@pytest.mark.django_db(transaction=True)
class TestRunWithTheBrokerDown:
    def test_503_with_retry_after_and_no_run_left_behind(self, admin_client, tenant, broker_down):
        response = admin_client.post(RUN_URL, {}, format="json")
        assert response.status_code == 503
        assert response.json() == {
            "detail": "Background jobs cannot be queued right now; nothing was started. Try again shortly."
        }
        assert response.headers["Retry-After"] == "30"
        assert not RetentionRun.objects.exists()
        assert not AuditEvent.objects.filter(action="retention.run_requested").exists()

    def test_the_next_request_once_it_is_back_is_accepted(self, admin_client, tenant, broker_down, monkeypatch):
        assert admin_client.post(RUN_URL, {}, format="json").status_code == 503
        from retention import tasks

        sent = []
        monkeypatch.setattr(tasks.retention_run_execute, "apply_async", lambda args, **kw: sent.append(args[0]))
        response = admin_client.post(RUN_URL, {}, format="json")
        assert response.status_code == 202
        assert sent == [response.json()["run_id"]]
        assert RetentionRun.objects.get().status == RetentionRun.Status.QUEUED

    def test_an_active_run_is_returned_without_publishing_again(self, admin_client, tenant, broker_up):
        first = admin_client.post(RUN_URL, {}, format="json")
        second = admin_client.post(RUN_URL, {}, format="json")
        assert (first.status_code, second.status_code) == (202, 202)
        assert first.json()["run_id"] == second.json()["run_id"]
        assert len(broker_up) == 1
