"""audit_record: who did what to which, and never a secret."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from audit.models import AuditEvent
from audit.services import REDACTED, audit_record
from core.caller import Caller
from users.tokens import token_pair_for

pytestmark = pytest.mark.django_db


class TestActor:
    def test_user_actor(self, tenant, admin_user):
        event = audit_record(by=Caller.acting(admin_user, client_ip="203.0.113.5"), action="user.create")
        assert (event.actor_type, event.actor_id, event.actor_label) == ("user", admin_user.id, "admin@acme.test")
        assert event.client_ip == "203.0.113.5"

    def test_api_key_actor(self, tenant, api_key):
        from apikeys.authentication import ApiKeyPrincipal

        principal = ApiKeyPrincipal(api_key.api_key)
        event = audit_record(by=Caller.acting(principal), action="ai.update")
        assert (event.actor_type, event.actor_id) == ("api_key", api_key.api_key.id)
        assert event.actor_label == str(principal)
        assert api_key.secret not in event.actor_label

    def test_no_actor_is_the_system(self, tenant):
        event = audit_record(by=Caller.system(tenant_id=tenant.id), action="retention.run")
        assert (event.actor_type, event.actor_id, event.actor_label) == ("system", None, "system")

    def test_empty_client_ip_is_stored_as_null(self, tenant):
        assert audit_record(by=Caller.system(tenant_id=tenant.id, client_ip=""), action="x").client_ip is None


class TestTarget:
    def test_target_type_id_and_label(self, tenant, viewer_user):
        event = audit_record(by=Caller.system(tenant_id=tenant.id), action="user.create", target=viewer_user)
        assert (event.target_type, event.target_id, event.target_label) == (
            "user",
            str(viewer_user.id),
            viewer_user.email,
        )

    def test_explicit_target_type_wins(self, tenant, viewer_user):
        event = audit_record(
            by=Caller.system(tenant_id=tenant.id), action="x", target=viewer_user, target_type="member"
        )
        assert event.target_type == "member"


class TestChanges:
    def test_values_json_cannot_hold_are_stored_as_text(self, tenant):
        when = datetime(2027, 4, 4, tzinfo=UTC)
        ident = uuid.uuid4()
        event = audit_record(
            by=Caller.system(tenant_id=tenant.id),
            action="x",
            changes={"expires_at": when, "id": ident, "n": Decimal("1.5")},
        )
        event.refresh_from_db()
        assert event.changes == {"expires_at": "2027-04-04T00:00:00Z", "id": str(ident), "n": "1.5"}

    @pytest.mark.parametrize(
        "key", ["password", "new_password", "current_password", "secret", "key_digest", "token", "custom_ai_api_key"]
    )
    def test_secret_keys_are_redacted(self, tenant, key):
        event = audit_record(
            by=Caller.system(tenant_id=tenant.id), action="x", changes={key: "hunter2-and-more", "name": "kept"}
        )
        event.refresh_from_db()
        assert event.changes == {key: REDACTED, "name": "kept"}

    def test_nested_secret_keys_are_redacted(self, tenant):
        changes = {"ai": {"custom_ai_model": "llama3", "custom_ai_api_key": "sk-live"}, "list": [{"password": "p"}]}
        event = audit_record(by=Caller.system(tenant_id=tenant.id), action="x", changes=changes)
        event.refresh_from_db()
        assert event.changes == {
            "ai": {"custom_ai_model": "llama3", "custom_ai_api_key": REDACTED},
            "list": [{"password": REDACTED}],
        }

    def test_values_that_look_like_credentials_are_redacted(self, tenant, api_key, admin_user):
        jwt = token_pair_for(admin_user)["access"]
        changes = {"note": f"used {api_key.secret}", "header": f"Bearer {jwt}", "names": [api_key.secret]}
        event = audit_record(by=Caller.system(tenant_id=tenant.id), action="x", changes=changes, target=api_key.api_key)
        event.refresh_from_db()
        stored = str(event.changes)
        assert api_key.secret not in stored and jwt not in stored
        assert event.changes == {"note": f"used {REDACTED}", "header": f"Bearer {REDACTED}", "names": [REDACTED]}

    def test_the_prefix_of_a_key_is_kept(self, tenant, api_key):
        # 12 characters identify a key without being one; people need them in the log.
        prefix = api_key.api_key.prefix
        event = audit_record(by=Caller.system(tenant_id=tenant.id), action="x", changes={"prefix": prefix})
        assert event.changes == {"prefix": prefix}


class TestPersistence:
    def test_each_event_belongs_to_its_tenant(self, tenant, other_tenant):
        audit_record(by=Caller.system(tenant_id=tenant.id), action="a")
        audit_record(by=Caller.system(tenant_id=tenant.id), action="b")
        audit_record(by=Caller.system(tenant_id=other_tenant.id), action="c")
        assert sorted(AuditEvent.objects.filter(tenant=tenant).values_list("action", flat=True)) == ["a", "b"]
        assert list(AuditEvent.objects.filter(tenant=other_tenant).values_list("action", flat=True)) == ["c"]
