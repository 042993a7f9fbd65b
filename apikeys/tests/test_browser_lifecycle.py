"""A key's life in the admin console, in a real browser, as a tenant admin lives it (issue 16, item 8):
rotate (the new secret shown once, the old one kept for the overlap), disable, enable, and the key
policy's webhook URL (its signing secret shown once)."""

import pytest

from apikeys import keys
from apikeys.models import ApiKey
from audit.models import AuditEvent
from haltless.testing import client_for_key
from settings_app.crypto import decrypt_secret
from users.tests.factories import DEFAULT_PASSWORD
from webhooks.models import WebhookEndpoint

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KEYS = "/admin/apikeys/apikey/"


def whoami(secret: str):
    return client_for_key(secret).get("/api/v1/agent/whoami")


def run_action(browser, api_key: ApiKey, action: str) -> None:
    browser.open(KEYS)
    browser.check("_selected_action", str(api_key.pk))
    browser.select("action", action)
    browser.click('button[name="index"]')


def test_rotate_shows_the_new_secret_once_then_disable_and_enable(browser, admin_user, make_api_key):
    issued = make_api_key(name="line 3 gateway")
    old_secret, api_key = issued.secret, issued.api_key
    assert whoami(old_secret).status_code == 200  # used: the rotation keeps it for the overlap
    browser.log_in(admin_user.email, DEFAULT_PASSWORD)

    # Rotate: the new secret is on the page after the redirect, once; the old one still works.
    run_action(browser, api_key, "Rotate the selected key (shows its new secret once)")
    assert browser.path.endswith("/revealed/"), browser.messages()
    new_secret = browser.find("#revealed-secret").get_attribute("value")
    assert keys.is_well_formed(new_secret) and new_secret != old_secret
    assert ApiKey.objects.get(pk=api_key.pk).key_digest == keys.digest(new_secret)
    assert whoami(new_secret).json()["secret"] == "current"
    assert whoami(old_secret).json()["secret"] == "previous"
    browser.reload()
    assert not browser.find_all("#revealed-secret")
    assert "This secret was already shown" in browser.text
    assert new_secret not in browser.driver.page_source

    # Disable: every secret of the key answers 401, and a disabled key is not rotated.
    run_action(browser, api_key, "Disable selected keys (they can be enabled again)")
    assert "Disabled 1 API key." in browser.messages()
    for secret in (new_secret, old_secret):
        answer = whoami(secret)
        assert (answer.status_code, answer.json()) == (401, {"detail": "API key is disabled."})
    run_action(browser, api_key, "Rotate the selected key (shows its new secret once)")
    assert "Not rotated: A disabled key cannot be rotated; enable it first." in browser.messages()
    assert ApiKey.objects.get(pk=api_key.pk).key_digest == keys.digest(new_secret)

    # Enable: it works again, with the same secret.
    run_action(browser, api_key, "Enable selected keys")
    assert "Enabled 1 API key." in browser.messages()
    assert whoami(new_secret).status_code == 200

    actions = list(
        AuditEvent.objects.filter(target_id=str(api_key.pk), action__startswith="api_key.")
        .order_by("occurred_at")
        .values_list("action", "actor_id", "changes")
    )
    assert [(action, actor) for action, actor, _ in actions] == [
        ("api_key.create", None),
        ("api_key.rotate", admin_user.pk),
        ("api_key.update", admin_user.pk),
        ("api_key.update", admin_user.pk),
    ]
    assert [changes for *_, changes in actions[2:]] == [{"disabled": [False, True]}, {"disabled": [True, False]}]
    browser.log_out()


def test_the_policy_form_sets_the_webhook_url_and_shows_its_secret_once(browser, admin_user):
    browser.log_in(admin_user.email, DEFAULT_PASSWORD)
    browser.open("/admin/apikeys/apikeypolicy/add/")
    browser.fill("webhook_url", "http://127.0.0.1:9/hook")
    browser.submit("_save")
    assert browser.path.endswith("/add/")
    assert "This address is not allowed for a webhook." in browser.errors()
    assert not WebhookEndpoint.objects.exists()

    browser.fill("webhook_url", "https://hooks.example.com/haltless")
    browser.submit("_save")
    assert browser.path.endswith("/revealed/"), browser.errors()
    secret = browser.find("#revealed-secret").get_attribute("value")
    assert secret.startswith("whsec_")
    endpoint = WebhookEndpoint.objects.get(tenant_id=admin_user.tenant_id)
    assert (endpoint.url, decrypt_secret(endpoint.secret_encrypted)) == ("https://hooks.example.com/haltless", secret)
    browser.reload()
    assert not browser.find_all("#revealed-secret")
    assert secret not in browser.driver.page_source
    event = AuditEvent.objects.get(action="api_key_policy.update")
    assert event.changes["webhook_url"] == [None, "https://hooks.example.com"]
    browser.log_out()
