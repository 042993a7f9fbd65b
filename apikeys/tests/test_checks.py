import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from apikeys.checks import check_required_scopes


class TestRequiredScopeCheck:
    def test_the_project_urls_pass(self):
        assert check_required_scopes() == []

    @pytest.mark.urls("apikeys.tests.urls")
    def test_the_probe_urls_pass(self):
        assert check_required_scopes() == []

    @pytest.mark.urls("apikeys.tests.urls_bad_scopes")
    def test_unregistered_scopes_are_errors_naming_view_route_and_scope(self):
        errors = check_required_scopes()
        by_id: dict[str, list[str]] = {}
        for error in errors:
            by_id.setdefault(error.id, []).append(error.msg)
        e001 = sorted(by_id["apikeys.E001"])
        assert len(e001) == 3
        assert any("TypoScopeView (/api/v1/nested/typo)" in m and "'read:machine'" in m for m in e001)
        assert any("FineView (/api/v1/override)" in m and "'ingestion'" in m for m in e001)
        assert any("WriteViewSet" in m and "'write:everything'" in m for m in e001)
        assert by_id["apikeys.E002"] == [
            "apikeys.tests.urls_bad_scopes.UnreachableView (/api/v1/unreachable) refuses user logins "
            "(allow_user_login = False) but declares no required_scope, so no credential can ever reach it."
        ]
        assert set(by_id) == {"apikeys.E001", "apikeys.E002"}

    @pytest.mark.urls("apikeys.tests.urls_bad_scopes")
    def test_the_check_is_registered_and_stops_management_commands(self):
        assert {e.id for e in run_checks()} >= {"apikeys.E001", "apikeys.E002"}
        with pytest.raises(SystemCheckError, match=r"apikeys\.E001"):
            call_command("check")
