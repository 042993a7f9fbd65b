import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys import keys, scopes
from apikeys.models import ApiKey
from apikeys.tests.factories import ApiKeyFactory
from audit.models import AuditEvent

ADD_URL = "/admin/apikeys/apikey/add/"
LIST_URL = "/admin/apikeys/apikey/"
KEY_IN_PAGE = re.compile(r"hlts_[0-9A-Za-z]{38}")
pytestmark = [pytest.mark.django_db, pytest.mark.urls("apikeys.tests.urls")]


def change_url(api_key) -> str:
    return f"/admin/apikeys/apikey/{api_key.pk}/change/"


def add_form(tenant, **overrides) -> dict:
    data = {"tenant": str(tenant.pk), "name": "line 3 agent", "scopes": ["ingest", "agent"]}
    data.update(overrides)
    return data


def revealed_url(api_key) -> str:
    return f"/admin/apikeys/apikey/{api_key.pk}/revealed/"


def create_in_admin(staff_client, tenant, **overrides):
    """POST the add form, follow its redirect; (the page that shows the key, the key)."""
    posted = staff_client.post(ADD_URL, add_form(tenant, **overrides))
    assert posted.status_code == 302, posted.content[:500]
    assert not KEY_IN_PAGE.search(posted.content.decode() + posted["Location"])
    assert posted["Location"] == revealed_url(ApiKey.objects.latest("created_at"))
    response = staff_client.get(posted["Location"])
    assert response.status_code == 200
    found = KEY_IN_PAGE.findall(response.content.decode())
    return response, found[0] if found else None


class TestAddShowsTheKeyOnce:
    def test_add_form_offers_the_registry_scopes_and_no_digest(self, staff_client):
        page = staff_client.get(ADD_URL).content.decode()
        for name in scopes.SCOPES:
            assert f'value="{name}"' in page
        assert "key_digest" not in page
        assert 'name="prefix"' not in page

    def test_creating_shows_the_full_key_in_the_answer(self, staff_client, staff_user, tenant):
        response, secret = create_in_admin(staff_client, tenant)
        api_key = ApiKey.objects.get()
        assert secret is not None and keys.is_well_formed(secret)
        assert api_key.key_digest == keys.digest(secret)
        assert api_key.name == "line 3 agent"
        assert api_key.scopes == ["ingest", "agent"]
        assert api_key.tenant == tenant
        assert api_key.created_by == staff_user
        assert "shown only once" in response.content.decode()
        assert "no-store" in response.headers["Cache-Control"]

    def test_the_key_is_never_shown_again(self, staff_client, tenant):
        _, secret = create_in_admin(staff_client, tenant)
        api_key = ApiKey.objects.get()
        for url in (LIST_URL, change_url(api_key), f"/admin/apikeys/apikey/{api_key.pk}/history/", "/admin/"):
            page = staff_client.get(url).content.decode()
            assert secret not in page, url
            assert api_key.key_digest not in page, url
            assert not KEY_IN_PAGE.search(page), url
        assert api_key.prefix in staff_client.get(LIST_URL).content.decode()

    def test_the_key_is_not_put_in_messages_or_the_session(self, staff_client, tenant):
        _, secret = create_in_admin(staff_client, tenant)
        assert all(secret not in morsel.value for morsel in staff_client.cookies.values())
        assert secret not in str(dict(staff_client.session))

    def test_reloading_the_page_shows_it_was_shown_and_creates_no_second_key(self, staff_client, tenant):
        _, secret = create_in_admin(staff_client, tenant)
        api_key = ApiKey.objects.get()
        again = staff_client.get(revealed_url(api_key))
        assert again.status_code == 200
        page = again.content.decode()
        assert "This secret was already shown, or more than 5 minutes have passed. It cannot be shown again." in page
        assert secret not in page and not KEY_IN_PAGE.search(page)
        assert "no-store" in again.headers["Cache-Control"]
        assert ApiKey.objects.count() == 1

    def test_between_post_and_page_the_key_is_held_encrypted_for_at_most_five_minutes(
        self, staff_client, tenant, monkeypatch
    ):
        from django.core.cache import cache

        from core import reveal

        held = {}
        real_set = cache.set

        def spy(key, value, timeout=None, **kwargs):
            held[key] = (value, timeout)
            return real_set(key, value, timeout=timeout, **kwargs)

        monkeypatch.setattr(reveal.cache, "set", spy)
        posted = staff_client.post(ADD_URL, add_form(tenant))
        ((slot, (value, timeout)),) = held.items()
        assert timeout == 300
        assert cache.get(slot) == value
        assert not KEY_IN_PAGE.search(value.decode() if isinstance(value, bytes) else str(value))
        assert staff_client.session.session_key not in slot  # only its digest names the slot
        page = staff_client.get(posted["Location"]).content.decode()
        assert KEY_IN_PAGE.search(page)
        assert cache.get(slot) is None  # deleted when shown

    def test_another_session_of_the_same_user_cannot_take_the_key(self, staff_client, staff_user, tenant):
        from django.test import Client

        posted = staff_client.post(ADD_URL, add_form(tenant))
        other = Client()
        other.force_login(staff_user)
        page = other.get(posted["Location"]).content.decode()
        assert not KEY_IN_PAGE.search(page)
        assert KEY_IN_PAGE.search(staff_client.get(posted["Location"]).content.decode())

    def test_creation_is_audited(self, staff_client, staff_user, tenant):
        _, secret = create_in_admin(staff_client, tenant)
        event = AuditEvent.objects.get(action="api_key.create")
        assert event.tenant_id == tenant.id
        assert event.actor_id == staff_user.id
        assert secret not in str(event.changes)

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"scopes": []}, "This field is required."),
            ({"scopes": ["root"]}, "Select a valid choice."),
            ({"name": "  "}, "This field is required."),
            ({"expires_at_0": "2001-01-01", "expires_at_1": "00:00:00"}, "The expiry must be in the future."),
        ],
    )
    def test_invalid_input_shows_errors_and_creates_nothing(self, staff_client, tenant, overrides, message):
        response = staff_client.post(ADD_URL, add_form(tenant, **overrides))
        assert response.status_code == 200
        assert message in response.content.decode()
        assert not KEY_IN_PAGE.search(response.content.decode())
        assert not ApiKey.objects.exists()

    def test_expiry_in_the_future_is_kept(self, staff_client, tenant):
        create_in_admin(staff_client, tenant, expires_at_0="2099-01-02", expires_at_1="03:04:05")
        assert ApiKey.objects.get().expires_at.isoformat() == "2099-01-02T03:04:05+00:00"


class TestChange:
    def test_scopes_and_name_change_through_the_service_and_the_secret_stays(self, staff_client, api_key, tenant):
        response = staff_client.post(
            change_url(api_key.api_key), {"name": "renamed", "scopes": ["read:machines"], "expires_at_0": ""}
        )
        assert response.status_code == 302
        updated = ApiKey.objects.get(pk=api_key.api_key.pk)
        assert (updated.name, updated.scopes) == ("renamed", ["read:machines"])
        assert updated.key_digest == api_key.api_key.key_digest
        event = AuditEvent.objects.get(action="api_key.update")
        assert event.changes == {"name": ["test key", "renamed"], "scopes": [["ingest", "agent"], ["read:machines"]]}

    def test_an_expired_key_can_still_be_renamed(self, staff_client, expired_key):
        data = {
            "name": "renamed",
            "scopes": expired_key.scopes,
            "expires_at_0": timezone.localtime(expired_key.expires_at).strftime("%Y-%m-%d"),
            "expires_at_1": timezone.localtime(expired_key.expires_at).strftime("%H:%M:%S"),
        }
        # The admin's widget drops microseconds; store the expiry as the form will send it back.
        ApiKey.objects.filter(pk=expired_key.pk).update(expires_at=expired_key.expires_at.replace(microsecond=0))
        response = staff_client.post(change_url(expired_key), data)
        assert response.status_code == 302
        assert ApiKey.objects.get(pk=expired_key.pk).name == "renamed"

    def test_moving_the_expiry_into_the_past_is_refused(self, staff_client, api_key):
        data = {"name": "k", "scopes": ["ingest"], "expires_at_0": "2001-01-01", "expires_at_1": "00:00:00"}
        response = staff_client.post(change_url(api_key.api_key), data)
        assert response.status_code == 200
        assert "The expiry must be in the future." in response.content.decode()
        assert ApiKey.objects.get(pk=api_key.api_key.pk).expires_at is None

    def test_change_page_never_shows_the_digest(self, staff_client, api_key):
        page = staff_client.get(change_url(api_key.api_key)).content.decode()
        assert api_key.api_key.prefix in page
        assert api_key.api_key.key_digest not in page
        assert api_key.secret not in page

    def test_a_revoked_key_is_read_only(self, staff_client, revoked_key):
        page = staff_client.get(change_url(revoked_key))
        assert page.status_code == 200
        assert 'name="name"' not in page.content.decode()
        response = staff_client.post(change_url(revoked_key), {"name": "x", "scopes": ["ingest"]})
        assert response.status_code == 403
        assert ApiKey.objects.get(pk=revoked_key.pk).name == "revoked"


class TestNoHardDelete:
    def test_keys_cannot_be_deleted_only_revoked(self, staff_client, api_key):
        url = f"/admin/apikeys/apikey/{api_key.api_key.pk}/delete/"
        assert staff_client.get(url).status_code == 403
        assert staff_client.post(url, {"post": "yes"}).status_code == 403
        assert ApiKey.objects.filter(pk=api_key.api_key.pk).exists()
        page = staff_client.get(LIST_URL).content.decode()
        assert 'value="delete_selected"' not in page
        assert 'value="revoke_selected"' in page
        assert "/delete/" not in staff_client.get(change_url(api_key.api_key)).content.decode()


class TestChangelist:
    def test_columns(self, staff_client, api_key, tenant):
        page = staff_client.get(LIST_URL).content.decode()
        for header in ("Name", "Tenant", "Prefix", "Scopes", "Created at", "Expires at", "Last used at", "Revoked"):
            assert header in page, header
        assert "ingest, agent" in page
        assert tenant.name in page

    def test_revoke_selected_keys_uses_the_service(self, staff_client, staff_user, make_api_key, revoked_key):
        first, second, kept = make_api_key(name="a"), make_api_key(name="b"), make_api_key(name="c")
        response = staff_client.post(
            LIST_URL,
            {
                "action": "revoke_selected",
                "_selected_action": [str(first.api_key.pk), str(second.api_key.pk), str(revoked_key.pk)],
            },
            follow=True,
        )
        assert response.status_code == 200
        assert "Revoked 2 API keys. 1 was already revoked." in response.content.decode()
        assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 3
        assert ApiKey.objects.get(pk=kept.api_key.pk).revoked_at is None
        events = AuditEvent.objects.filter(action="api_key.revoke")
        assert {e.target_id for e in events} == {str(first.api_key.pk), str(second.api_key.pk)}
        assert all(e.actor_id == staff_user.id for e in events)

    @pytest.mark.parametrize(
        ("status", "expected"), [("active", {"live"}), ("expired", {"expired"}), ("revoked", {"revoked"})]
    )
    def test_status_filter(self, staff_client, make_api_key, expired_key, revoked_key, status, expected):
        make_api_key(name="live")
        response = staff_client.get(LIST_URL, {"status": status})
        names = {api_key.name for api_key in response.context["cl"].result_list}
        assert names == expected

    def test_tenant_filter_and_search(self, staff_client, api_key, other_tenant_key, other_tenant):
        by_tenant = staff_client.get(LIST_URL, {"tenant__id__exact": str(other_tenant.pk)})
        assert [k.pk for k in by_tenant.context["cl"].result_list] == [other_tenant_key.api_key.pk]
        by_prefix = staff_client.get(LIST_URL, {"q": api_key.api_key.prefix})
        assert [k.pk for k in by_prefix.context["cl"].result_list] == [api_key.api_key.pk]
        by_tenant_name = staff_client.get(LIST_URL, {"q": other_tenant.name})
        assert [k.pk for k in by_tenant_name.context["cl"].result_list] == [other_tenant_key.api_key.pk]

    def test_users_who_are_not_admins_are_kept_out(self, client, operator_user):
        client.force_login(operator_user)
        response = client.get(LIST_URL)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]

    def test_soon_expiring_key_counts_as_active(self, staff_client, tenant):
        ApiKeyFactory(tenant=tenant, name="soon", expires_at=timezone.now() + timedelta(hours=1))
        names = {k.name for k in staff_client.get(LIST_URL, {"status": "active"}).context["cl"].result_list}
        assert names == {"soon"}
