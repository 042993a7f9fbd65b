"""Enrollment tokens in the admin console, in a real browser, as a tenant admin uses them."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys import keys
from apikeys.models import ApiKey, EnrollmentToken
from core.caller import Caller
from users.tests.factories import DEFAULT_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def enroll(secret: str, hostname: str) -> dict:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    answer = client.post("/api/v1/agent/enroll", {"hostname": hostname}, format="json")
    assert answer.status_code == 201, answer.json()
    return answer.json()


def test_create_shown_once_see_enrolled_keys_then_delete_and_revoke_them(browser, admin_user, other_tenant_admin):
    browser.log_in(admin_user.email, DEFAULT_PASSWORD)

    browser.open("/admin/apikeys/enrollmenttoken/add/")
    browser.fill("name", "line-3 gateways")
    browser.fill("max_uses", "5")
    expires = timezone.localtime(timezone.now() + timedelta(days=2))
    browser.fill("expires_at_0", expires.strftime("%Y-%m-%d"))
    browser.fill("expires_at_1", expires.strftime("%H:%M:%S"))
    browser.submit("_save")
    assert browser.path.endswith("/revealed/"), browser.errors()
    secret = browser.find("#revealed-secret").get_attribute("value")
    assert keys.is_well_formed(secret, prefix="hlte_")
    token = EnrollmentToken.objects.get()
    assert token.tenant_id == admin_user.tenant_id and token.max_uses == 5

    browser.reload()
    assert not browser.find_all("#revealed-secret")
    assert secret not in browser.driver.page_source
    assert EnrollmentToken.objects.count() == 1

    first, second = enroll(secret, "gw-01"), enroll(secret, "gw-02")
    browser.open(f"/admin/apikeys/enrollmenttoken/{token.pk}/change/")
    assert "line-3 gateways/gw-01" in browser.text and "line-3 gateways/gw-02" in browser.text

    browser.open("/admin/apikeys/enrollmenttoken/")
    browser.check("_selected_action", str(token.pk))
    browser.select("action", "Delete selected tokens and revoke every key they enrolled")
    browser.click('button[name="index"]')
    assert "Deleted 1 enrollment token. Revoked 2 API keys." in browser.messages()
    revoked = {str(pk) for pk in ApiKey.objects.filter(revoked_at__isnull=False).values_list("pk", flat=True)}
    assert revoked == {first["key_id"], second["key_id"]}
    assert EnrollmentToken.objects.get().deleted_at is not None
    browser.log_out()


def test_another_tenants_token_is_not_found(browser, admin_user, other_tenant):
    from apikeys.enrollment import enrollment_token_create

    theirs = enrollment_token_create(
        by=Caller.system(tenant_id=other_tenant.id), name="theirs", expires_at=timezone.now() + timedelta(days=1)
    ).token
    browser.log_in(admin_user.email, DEFAULT_PASSWORD)
    browser.open("/admin/apikeys/enrollmenttoken/")
    assert "theirs" not in browser.text
    browser.open(f"/admin/apikeys/enrollmenttoken/{theirs.pk}/change/")
    assert "theirs" not in browser.text
    assert "doesn\u2019t exist" in browser.text or "Not Found" in browser.text, browser.text[:300]
    browser.log_out()
