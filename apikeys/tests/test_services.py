from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apikeys import keys
from apikeys.authentication import ApiKeyPrincipal
from apikeys.models import ApiKey
from apikeys.services import (
    api_key_create,
    api_key_record_use,
    api_key_revoke,
    api_key_update,
)
from audit.models import AuditEvent
from core import errors
from core.caller import Caller

pytestmark = pytest.mark.django_db


class TestCreate:
    def test_only_a_digest_is_stored(self, tenant):
        issued = api_key_create(by=Caller.system(tenant_id=tenant.id), name="k")
        row = ApiKey.objects.filter(pk=issued.api_key.pk).values().get()
        assert issued.secret not in str(row)
        assert row["key_digest"] == keys.digest(issued.secret)
        assert row["prefix"] == issued.secret[:12]

    def test_all_errors_at_once(self, tenant):
        with pytest.raises(ValidationError) as excinfo:
            api_key_create(
                by=Caller.system(tenant_id=tenant.id),
                name="",
                scopes_requested=["nope"],
                expires_at=timezone.now() - timedelta(days=1),
            )
        assert set(excinfo.value.message_dict) == {"name", "scopes", "expires_at"}

    def test_naive_expiry_is_refused(self, tenant):
        with pytest.raises(ValidationError) as excinfo:
            api_key_create(
                by=Caller.system(tenant_id=tenant.id),
                name="k",
                expires_at=timezone.now().replace(tzinfo=None) + timedelta(days=1),
            )
        assert excinfo.value.message_dict == {"expires_at": ["Give the expiry with a time zone."]}

    def test_a_key_creating_a_key_is_not_stored_as_created_by(self, tenant, api_key):
        issued = api_key_create(by=Caller.acting(ApiKeyPrincipal(api_key.api_key)), name="k")
        assert issued.api_key.created_by is None
        event = AuditEvent.objects.filter(action="api_key.create").latest("occurred_at")
        assert event.actor_type == AuditEvent.ActorType.API_KEY


class TestRevoke:
    def test_revokes_once(self, api_key, admin_user):
        api_key_revoke(by=Caller.acting(admin_user), api_key=api_key.api_key)
        assert ApiKey.objects.get(pk=api_key.api_key.pk).revoked_at is not None
        with pytest.raises(errors.NotFound, match=r"^Not found\.$"):
            api_key_revoke(by=Caller.acting(admin_user), api_key=api_key.api_key)
        assert AuditEvent.objects.filter(action="api_key.revoke").count() == 1

    def test_a_stale_instance_cannot_revoke_twice(self, api_key, admin_user):
        stale = ApiKey.objects.get(pk=api_key.api_key.pk)
        api_key_revoke(by=Caller.acting(admin_user), api_key=api_key.api_key)
        with pytest.raises(errors.NotFound, match=r"^Not found\.$"):
            api_key_revoke(by=Caller.acting(admin_user), api_key=stale)


class TestTenancy:
    def test_another_tenants_key_is_not_found_and_not_changed(self, api_key, other_tenant):
        outsider = Caller.system(tenant_id=other_tenant.id)
        for attempt in (
            lambda: api_key_revoke(by=outsider, api_key=api_key.api_key),
            lambda: api_key_update(by=outsider, api_key=api_key.api_key, name="taken over"),
        ):
            with pytest.raises(errors.NotFound, match=r"^Not found\.$"):
                attempt()
        row = ApiKey.objects.get(pk=api_key.api_key.pk)
        assert (row.revoked_at, row.name) == (None, api_key.api_key.name)
        assert not AuditEvent.objects.filter(action__in=["api_key.revoke", "api_key.update"]).exists()


class TestUpdate:
    def test_changes_are_validated_and_audited(self, api_key, admin_user):
        api_key_update(by=Caller.acting(admin_user), api_key=api_key.api_key, scopes_requested="read_only")
        assert ApiKey.objects.get(pk=api_key.api_key.pk).scopes == ["read:machines", "read:sensors"]
        with pytest.raises(ValidationError):
            api_key_update(by=Caller.acting(admin_user), api_key=api_key.api_key, scopes_requested=[])
        assert AuditEvent.objects.filter(action="api_key.update").count() == 1

    def test_no_change_no_event(self, api_key, admin_user):
        api_key_update(by=Caller.acting(admin_user), api_key=api_key.api_key, name="test key")
        assert not AuditEvent.objects.filter(action="api_key.update").exists()

    def test_revoked_keys_cannot_change(self, revoked_key, admin_user):
        with pytest.raises(ValidationError):
            api_key_update(by=Caller.acting(admin_user), api_key=revoked_key, name="x")


class TestRecordUse:
    def test_a_stale_copy_does_not_write_over_a_fresh_use(self, api_key):
        now = timezone.now()
        stale_copy = ApiKey.objects.get(pk=api_key.api_key.pk)
        assert api_key_record_use(api_key=api_key.api_key, now=now, client_ip="10.0.0.1") is True
        # Another worker, holding the row from before that write, must not write again this minute.
        assert api_key_record_use(api_key=stale_copy, now=now + timedelta(seconds=5), client_ip="10.0.0.2") is False
        row = ApiKey.objects.get(pk=api_key.api_key.pk)
        assert (row.last_used_at, row.last_used_ip) == (now, "10.0.0.1")

    def test_uses_are_not_audited(self, api_key):
        api_key_record_use(api_key=api_key.api_key, now=timezone.now(), client_ip=None)
        assert not AuditEvent.objects.exclude(action="api_key.create").exists()
