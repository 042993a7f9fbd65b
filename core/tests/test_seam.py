"""The seam every app shares: who is calling, domain errors mapped once, the import contracts."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory, override_settings

from core.caller import Caller, caller_of

ROOT = Path(__file__).resolve().parents[2]


class TestCallerOfARequest:
    def test_a_user_acts_on_their_tenant_from_their_address(self, admin_user):
        request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.10")
        request.user = admin_user
        expected = Caller(principal=admin_user, tenant_id=admin_user.tenant_id, client_ip="192.0.2.10")
        assert caller_of(request) == expected
        assert caller_of(request).user == admin_user
        assert caller_of(request).is_api_key is False

    def test_an_anonymous_request_has_no_principal_and_no_tenant(self):
        request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.10")
        request.user = AnonymousUser()
        assert caller_of(request) == Caller(principal=None, tenant_id=None, client_ip="192.0.2.10")
        assert caller_of(request).is_system

    def test_a_forged_forwarded_for_is_not_the_address(self, admin_user):
        request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="198.51.100.7")
        request.user = admin_user
        assert caller_of(request).client_ip == "192.0.2.10"

    @override_settings(TRUSTED_PROXIES=["192.0.2.0/24"])
    def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(self, admin_user):
        request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="198.51.100.7")
        request.user = admin_user
        assert caller_of(request).client_ip == "198.51.100.7"

    def test_an_api_key_is_a_principal_but_not_a_user(self, api_key):
        from apikeys.authentication import ApiKeyPrincipal

        principal = ApiKeyPrincipal(api_key.api_key)
        by = Caller.acting(principal, client_ip="192.0.2.10")
        assert (by.tenant_id, by.user, by.is_api_key) == (api_key.api_key.tenant_id, None, True)

    def test_staff_act_on_the_tenant_they_chose(self, admin_user, other_tenant):
        by = Caller.acting(admin_user).on_tenant(other_tenant.pk)
        assert (by.principal, by.tenant_id) == (admin_user, other_tenant.pk)


@pytest.mark.django_db
@pytest.mark.urls("core.tests.urls")
class TestDomainErrorsAnswer:
    """Each kind has one status and DRF's body, for every endpoint (core.exceptions)."""

    @pytest.mark.parametrize(
        ("kind", "status", "body"),
        [
            ("not_found", 404, {"detail": "No such widget."}),
            ("conflict", 409, {"detail": "The widget is already revoked."}),
            ("rule", 400, {"size": ["Too big."]}),
            ("rule_message", 400, {"detail": "Widgets cannot be resized."}),
            ("refused", 403, {"detail": "Widgets are for admins."}),
            ("upstream", 502, {"detail": "The widget server answered 500."}),
            ("unavailable", 503, {"detail": "The broker is down."}),
            ("throttled", 429, {"detail": "Too many widgets. Expected available in 12 seconds."}),
        ],
    )
    def test_status_and_body(self, admin_client, kind, status, body):
        response = admin_client.get(f"/api/v1/test/domain-error/{kind}")
        assert (response.status_code, response.json()) == (status, body)

    @pytest.mark.parametrize(("kind", "retry_after"), [("unavailable", "7"), ("throttled", "12")])
    def test_retry_after_is_sent(self, admin_client, kind, retry_after):
        assert admin_client.get(f"/api/v1/test/domain-error/{kind}")["Retry-After"] == retry_after


def _contract_layers(name: str) -> list[str]:
    text = (ROOT / ".importlinter").read_text()
    section = text.split(f"[importlinter:contract:{name}]", 1)[1].split("\n[", 1)[0]
    block = section.split("layers =", 1)[1].split("ignore_imports", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith(";")]


class TestImportContracts:
    def test_the_app_layers_are_the_arrows_of_the_architecture(self):
        arrows = (ROOT / "docs" / "architecture.md").read_text().split("## Which way the arrows point", 1)[1]
        block = arrows.split("```", 2)[1]
        documented = [m.group(1) for m in re.finditer(r"^(\w+)\s+->", block, flags=re.M)]
        assert _contract_layers("apps") == documented

    def test_an_upward_import_breaks_the_build(self, tmp_path):
        lint_imports = Path(sys.executable).with_name("lint-imports")
        tree = tmp_path / "tree"
        shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".venv", ".git", "var", "mutants", "__pycache__"))
        ok = subprocess.run([lint_imports, "--no-cache"], cwd=tree, capture_output=True, text=True)
        assert ok.returncode == 0, ok.stdout[-2000:]
        with (tree / "tenants" / "selectors.py").open("a") as module:
            module.write("\nfrom telemetry.models import Machine  # noqa: E402, F401\n")
        broken = subprocess.run([lint_imports, "--no-cache"], cwd=tree, capture_output=True, text=True)
        assert broken.returncode == 1
        assert "tenants is not allowed to import telemetry" in broken.stdout
