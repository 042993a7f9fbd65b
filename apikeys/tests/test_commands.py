from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apikeys import keys
from apikeys.management.commands.issue_api_key import Command
from apikeys.models import ApiKey
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def issue(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("issue_api_key", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


class TestIssueApiKey:
    def test_prints_the_key_alone_on_stdout_once(self, tenant):
        out, err = issue("--tenant", str(tenant.id), "--name", "line 3")
        secret = out.strip()
        assert out.count("\n") == 1 and keys.is_well_formed(secret)
        api_key = ApiKey.objects.get()
        assert api_key.key_digest == keys.digest(secret)
        assert (api_key.tenant, api_key.name, api_key.scopes) == (tenant, "line 3", ["ingest", "agent"])
        assert secret not in err
        assert api_key.prefix in err and "cannot be shown again" in err

    def test_tenant_by_name_any_case(self, tenant):
        issue("--tenant", "acme PLANT", "--name", "k")
        assert ApiKey.objects.get().tenant == tenant

    @pytest.mark.parametrize(
        ("scopes", "granted"),
        [
            (["read_only"], ["read:machines", "read:sensors"]),
            (["ingest", "read:sensors"], ["ingest", "read:sensors"]),
            (["edge_agent", "read_only", "agent"], ["ingest", "agent", "read:machines", "read:sensors"]),
        ],
    )
    def test_scopes_and_presets(self, tenant, scopes, granted):
        issue("--tenant", str(tenant.id), "--name", "k", "--scopes", *scopes)
        assert ApiKey.objects.get().scopes == granted

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2099-04-04T00:00:00Z", "2099-04-04T00:00:00+00:00"),
            ("2099-04-04T02:00:00+02:00", "2099-04-04T00:00:00+00:00"),
            ("2099-04-04T00:00:00", "2099-04-04T00:00:00+00:00"),
            ("2099-04-04", "2099-04-04T00:00:00+00:00"),
        ],
    )
    def test_expiry(self, tenant, value, expected):
        issue("--tenant", str(tenant.id), "--name", "k", "--expires-at", value)
        assert ApiKey.objects.get().expires_at.isoformat() == expected

    def test_audited_as_the_system(self, tenant):
        out, _ = issue("--tenant", str(tenant.id), "--name", "k")
        event = AuditEvent.objects.get(action="api_key.create")
        assert event.actor_type == AuditEvent.ActorType.SYSTEM
        assert out.strip() not in str(event.changes)

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--tenant", "Nowhere", "--name", "k"], "No tenant with id or name 'Nowhere'."),
            (["--tenant", "Acme Plant", "--name", " "], "name: A key needs a name."),
            (["--tenant", "Acme Plant", "--name", "k", "--scopes", "root"], "scopes: Unknown scope or preset: 'root'."),
            (
                ["--tenant", "Acme Plant", "--name", "k", "--expires-at", "2001-01-01"],
                "The expiry must be in the future.",
            ),
            (["--tenant", "Acme Plant", "--name", "k", "--expires-at", "soon"], "--expires-at: 'soon' is not an ISO"),
            (["--tenant", "Acme Plant", "--name", "k", "--expires-at", "2099-13-45"], "--expires-at: '2099-13-45'"),
        ],
    )
    def test_bad_input_is_a_one_line_error_and_issues_nothing(self, tenant, args, message):
        with pytest.raises(CommandError) as excinfo:
            issue(*args)
        assert message in str(excinfo.value)
        assert "\n" not in str(excinfo.value)
        assert not ApiKey.objects.exists()

    def test_exits_non_zero_with_one_line_on_stderr(self, tenant, capsys):
        with pytest.raises(SystemExit) as excinfo:
            Command().run_from_argv(
                ["manage.py", "issue_api_key", "--tenant", "Nowhere", "--name", "k", "--skip-checks"]
            )
        assert excinfo.value.code != 0
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == "CommandError: No tenant with id or name 'Nowhere'.\n"
