from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apikeys import keys
from apikeys.authentication import ApiKeyPrincipal
from apikeys.models import ApiKey
from apikeys.services import (
    ApiKeyAlreadyRevoked,
    api_key_create,
    api_key_record_use,
    api_key_revoke,
    api_key_update,
)
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


class TestCreate:
    def test_only_a_digest_is_stored(self, tenant):
        issued = api_key_create(tenant=tenant, name="k")
        row = ApiKey.objects.filter(pk=issued.api_key.pk).values().get()
        assert issued.secret not in str(row)
        assert row["key_digest"] == keys.digest(issued.secret)
        assert row["prefix"] == issued.secret[:12]

    def test_all_errors_at_once(self, tenant):
        with pytest.raises(ValidationError) as excinfo:
            api_key_create(
                tenant=tenant, name="", scopes_requested=["nope"], expires_at=timezone.now() - timedelta(days=1)
            )
        assert set(excinfo.value.message_dict) == {"name", "scopes", "expires_at"}

    def test_naive_expiry_is_refused(self, tenant):
        with pytest.raises(ValidationError) as excinfo:
            api_key_create(tenant=tenant, name="k", expires_at=timezone.now().replace(tzinfo=None) + timedelta(days=1))
        assert excinfo.value.message_dict == {"expires_at": ["Give the expiry with a time zone."]}

    def test_a_key_creating_a_key_is_not_stored_as_created_by(self, tenant, api_key):
        issued = api_key_create(tenant=tenant, name="k", created_by=ApiKeyPrincipal(api_key.api_key))
        assert issued.api_key.created_by is None
        event = AuditEvent.objects.filter(action="api_key.create").latest("occurred_at")
        assert event.actor_type == AuditEvent.ActorType.API_KEY


class TestRevoke:
    def test_revokes_once(self, api_key, admin_user):
        api_key_revoke(api_key=api_key.api_key, actor=admin_user)
        assert ApiKey.objects.get(pk=api_key.api_key.pk).revoked_at is not None
        with pytest.raises(ApiKeyAlreadyRevoked):
            api_key_revoke(api_key=api_key.api_key, actor=admin_user)
        assert AuditEvent.objects.filter(action="api_key.revoke").count() == 1

    def test_a_stale_instance_cannot_revoke_twice(self, api_key, admin_user):
        stale = ApiKey.objects.get(pk=api_key.api_key.pk)
        api_key_revoke(api_key=api_key.api_key, actor=admin_user)
        with pytest.raises(ApiKeyAlreadyRevoked):
            api_key_revoke(api_key=stale, actor=admin_user)


class TestUpdate:
    def test_changes_are_validated_and_audited(self, api_key, admin_user):
        api_key_update(api_key=api_key.api_key, scopes_requested="read_only", actor=admin_user)
        assert ApiKey.objects.get(pk=api_key.api_key.pk).scopes == ["read:machines", "read:sensors"]
        with pytest.raises(ValidationError):
            api_key_update(api_key=api_key.api_key, scopes_requested=[], actor=admin_user)
        assert AuditEvent.objects.filter(action="api_key.update").count() == 1

    def test_no_change_no_event(self, api_key, admin_user):
        api_key_update(api_key=api_key.api_key, name="test key", actor=admin_user)
        assert not AuditEvent.objects.filter(action="api_key.update").exists()

    def test_revoked_keys_cannot_change(self, revoked_key, admin_user):
        with pytest.raises(ValidationError):
            api_key_update(api_key=revoked_key, name="x", actor=admin_user)


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
