import pytest

from audit.models import AuditEvent
from core.permissions import ADMIN_REQUIRED, USER_LOGIN_REQUIRED
from users.models import Role, User
from users.services import EMAIL_TAKEN, LAST_ADMIN_DEMOTION
from users.tests.factories import UserFactory
from users.tests.helpers import REFRESH_URL, USERS_URL, bearer, role_url, user_url
from users.tokens import token_pair_for

pytestmark = pytest.mark.django_db

USER_FIELDS = {"id", "email", "full_name", "role", "is_active", "date_joined", "last_login"}
GOOD_PASSWORD = "Quiet-Turbine-Lathe-7"


def new_user_body(**overrides) -> dict:
    body = {"email": "new.person@acme.test", "password": GOOD_PASSWORD, "full_name": "New Person", "role": "operator"}
    body.update(overrides)
    return body


def admin_only_requests(target) -> list[tuple[str, str, dict | None]]:
    return [
        ("get", USERS_URL, None),
        ("post", USERS_URL, new_user_body()),
        ("get", user_url(target), None),
        ("put", role_url(target), {"role": "viewer"}),
        ("delete", user_url(target), None),
    ]


class TestAccess:
    @pytest.mark.parametrize("client_fixture", ["operator_client", "viewer_client"])
    def test_non_admins_get_403_on_every_user_endpoint(self, request, client_fixture, admin_user, second_admin):
        client = request.getfixturevalue(client_fixture)
        for method, url, body in admin_only_requests(second_admin):
            response = getattr(client, method)(url, body, format="json")
            assert response.status_code == 403, (method, url)
            assert response.json() == {"detail": ADMIN_REQUIRED}
        second_admin.refresh_from_db()
        assert (second_admin.role, second_admin.is_active) == (Role.ADMIN, True)
        assert not User.objects.filter(email="new.person@acme.test").exists()

    @pytest.mark.parametrize("key_fixture", ["api_key", "read_only_key"])
    def test_api_keys_get_403_on_every_user_endpoint(self, request, key_fixture, admin_user, second_admin):
        client = bearer(request.getfixturevalue(key_fixture).secret)
        for method, url, body in admin_only_requests(second_admin):
            response = getattr(client, method)(url, body, format="json")
            assert response.status_code == 403, (method, url)
            assert response.json() == {"detail": USER_LOGIN_REQUIRED}
        second_admin.refresh_from_db()
        assert (second_admin.role, second_admin.is_active) == (Role.ADMIN, True)

    def test_anonymous_gets_401(self, api_client, admin_user, second_admin):
        for method, url, body in admin_only_requests(second_admin):
            response = getattr(api_client, method)(url, body, format="json")
            assert response.status_code == 401, (method, url)
            assert "detail" in response.json()

    def test_trailing_slash_is_served_without_redirect(self, admin_client, admin_user):
        response = admin_client.get(USERS_URL + "/")
        assert response.status_code == 200
        assert [item["email"] for item in response.json()] == ["admin@acme.test"]


class TestList:
    def test_lists_the_tenants_users_with_the_contract_fields(
        self, admin_client, admin_user, operator_user, viewer_user, inactive_user, other_tenant_admin
    ):
        response = admin_client.get(USERS_URL)
        assert response.status_code == 200
        body = response.json()
        assert isinstance(body, list)
        assert [item["email"] for item in body] == [
            "admin@acme.test",
            "gone@acme.test",
            "operator@acme.test",
            "viewer@acme.test",
        ]
        assert all(set(item) == USER_FIELDS for item in body)
        first = body[0]
        assert first["id"] == str(admin_user.id)
        assert (first["role"], first["is_active"], first["full_name"]) == ("admin", True, admin_user.full_name)
        assert "password" not in response.content.decode()
        assert admin_user.password not in response.content.decode()

    def test_filters_by_role_and_activity(self, admin_client, admin_user, operator_user, inactive_user):
        operators = admin_client.get(USERS_URL, {"role": "operator"}).json()
        assert [item["email"] for item in operators] == ["gone@acme.test", "operator@acme.test"]
        inactive = admin_client.get(USERS_URL, {"is_active": "false"}).json()
        assert [item["email"] for item in inactive] == ["gone@acme.test"]

    def test_other_tenants_admin_sees_only_their_own_users(
        self, other_tenant_admin_client, admin_user, other_tenant_admin
    ):
        body = other_tenant_admin_client.get(USERS_URL).json()
        assert [item["email"] for item in body] == ["admin@other.test"]


class TestCreate:
    def test_admin_creates_a_user_in_their_tenant(self, admin_client, admin_user, login):
        response = admin_client.post(USERS_URL, new_user_body(email=" New.Person@ACME.test"), format="json")
        assert response.status_code == 201
        body = response.json()
        assert set(body) == USER_FIELDS
        assert (body["email"], body["full_name"], body["role"], body["is_active"]) == (
            "new.person@acme.test",
            "New Person",
            "operator",
            True,
        )
        user = User.objects.get(pk=body["id"])
        assert user.tenant_id == admin_user.tenant_id
        assert login("new.person@acme.test", GOOD_PASSWORD).status_code == 200

    def test_role_defaults_to_viewer(self, admin_client, admin_user):
        body = new_user_body()
        del body["role"]
        response = admin_client.post(USERS_URL, body, format="json")
        assert response.status_code == 201
        assert response.json()["role"] == "viewer"

    def test_creation_is_audited_without_the_password(self, admin_client, admin_user):
        response = admin_client.post(USERS_URL, new_user_body(), format="json")
        event = AuditEvent.objects.get(action="user.create")
        assert event.tenant_id == admin_user.tenant_id
        assert (event.actor_id, event.target_id) == (admin_user.id, response.json()["id"])
        assert event.changes == {"email": "new.person@acme.test", "role": "operator", "full_name": "New Person"}
        assert GOOD_PASSWORD not in str(event.changes)

    @pytest.mark.parametrize("email", ["operator@acme.test", "OPERATOR@Acme.Test", "admin@other.test"])
    def test_a_taken_email_in_any_case_or_tenant_is_400(self, admin_client, operator_user, other_tenant_admin, email):
        response = admin_client.post(USERS_URL, new_user_body(email=email), format="json")
        assert response.status_code == 400
        assert response.json() == {"email": [EMAIL_TAKEN]}
        assert User.objects.count() == 3  # the caller, the operator, the other tenant's admin

    @pytest.mark.parametrize(
        ("password", "message"),
        [
            ("Sh0rt-pw", "This password is too short. It must contain at least 10 characters."),
            ("password1234", "This password is too common."),
            ("8273649182736", "This password is entirely numeric."),
            ("new.person@acme", "The password is too similar to the email."),
            ("New Person 2", "The password is too similar to the full name."),
        ],
    )
    def test_a_password_the_validators_refuse_is_400_with_the_reason(self, admin_client, admin_user, password, message):
        response = admin_client.post(USERS_URL, new_user_body(password=password), format="json")
        assert response.status_code == 400
        assert message in response.json()["password"]
        assert not User.objects.filter(email="new.person@acme.test").exists()

    def test_unknown_role_is_400(self, admin_client, admin_user):
        response = admin_client.post(USERS_URL, new_user_body(role="boss"), format="json")
        assert response.status_code == 400
        assert response.json() == {"role": ['"boss" is not a valid choice.']}

    @pytest.mark.parametrize("email", ["not-an-email", "a@b", "two@@acme.test", ""])
    def test_malformed_email_is_400(self, admin_client, admin_user, email):
        response = admin_client.post(USERS_URL, new_user_body(email=email), format="json")
        assert response.status_code == 400
        assert list(response.json()) == ["email"]

    def test_missing_fields_are_400(self, admin_client, admin_user):
        response = admin_client.post(USERS_URL, {}, format="json")
        assert response.status_code == 400
        assert set(response.json()) == {"email", "password"}

    @pytest.mark.parametrize("field", ["tenant", "tenant_id", "is_active", "is_staff", "id"])
    def test_unknown_fields_are_400(self, admin_client, admin_user, other_tenant, field):
        response = admin_client.post(USERS_URL, new_user_body(**{field: str(other_tenant.id)}), format="json")
        assert response.status_code == 400
        assert response.json() == {field: ["Unknown field."]}
        assert not User.objects.filter(email="new.person@acme.test").exists()

    def test_every_reason_is_reported_at_once(self, admin_client, admin_user):
        response = admin_client.post(USERS_URL, new_user_body(email="admin@acme.test", password="short"), format="json")
        assert response.status_code == 400
        body = response.json()
        assert body["email"] == [EMAIL_TAKEN]
        assert "This password is too short. It must contain at least 10 characters." in body["password"]


class TestRetrieve:
    def test_admin_reads_a_user_of_their_tenant(self, admin_client, operator_user):
        response = admin_client.get(user_url(operator_user))
        assert response.status_code == 200
        assert response.json()["email"] == "operator@acme.test"
        assert set(response.json()) == USER_FIELDS

    def test_another_tenants_user_is_404(self, admin_client, admin_user, other_tenant_user):
        response = admin_client.get(user_url(other_tenant_user))
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}

    def test_unknown_id_is_404(self, admin_client, admin_user):
        response = admin_client.get(f"{USERS_URL}/00000000-0000-0000-0000-000000000000")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}

    def test_a_malformed_id_is_404(self, admin_client, admin_user):
        response = admin_client.get(f"{USERS_URL}/not-a-uuid")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}


class TestRoleChange:
    def test_admin_promotes_an_operator(self, admin_client, admin_user, operator_user):
        response = admin_client.put(role_url(operator_user), {"role": "admin"}, format="json")
        assert response.status_code == 200
        assert response.json()["role"] == "admin"
        assert set(response.json()) == USER_FIELDS
        operator_user.refresh_from_db()
        assert operator_user.role == Role.ADMIN
        event = AuditEvent.objects.get(action="user.role_change")
        assert (event.actor_id, event.target_id) == (admin_user.id, str(operator_user.id))
        assert event.changes == {"role": {"from": "operator", "to": "admin"}}

    def test_another_admin_can_be_demoted(self, admin_client, admin_user, second_admin):
        response = admin_client.put(role_url(second_admin), {"role": "viewer"}, format="json")
        assert response.status_code == 200
        assert response.json()["role"] == "viewer"

    def test_the_last_active_admin_cannot_be_demoted(self, admin_client, admin_user):
        response = admin_client.put(role_url(admin_user), {"role": "operator"}, format="json")
        assert response.status_code == 400
        assert response.json() == {
            "detail": "This user is the tenant's last active admin; make another user an admin first."
        }
        admin_user.refresh_from_db()
        assert admin_user.role == Role.ADMIN
        assert not AuditEvent.objects.filter(action="user.role_change").exists()

    def test_inactive_admins_do_not_count(self, admin_client, admin_user, tenant):
        UserFactory(tenant=tenant, role=Role.ADMIN, is_active=False)
        response = admin_client.put(role_url(admin_user), {"role": "operator"}, format="json")
        assert response.status_code == 400
        assert response.json() == {"detail": LAST_ADMIN_DEMOTION}

    def test_self_demotion_is_allowed_while_another_admin_remains(self, admin_client, admin_user, second_admin):
        response = admin_client.put(role_url(admin_user), {"role": "operator"}, format="json")
        assert response.status_code == 200
        assert response.json()["role"] == "operator"
        # The role is read from the database on every request, so it applies at once.
        assert admin_client.get(USERS_URL).status_code == 403

    def test_an_inactive_users_role_can_be_changed(self, admin_client, admin_user, inactive_user):
        response = admin_client.put(role_url(inactive_user), {"role": "admin"}, format="json")
        assert response.status_code == 200
        assert (response.json()["role"], response.json()["is_active"]) == ("admin", False)

    def test_the_same_role_is_a_no_op(self, admin_client, admin_user, operator_user):
        response = admin_client.put(role_url(operator_user), {"role": "operator"}, format="json")
        assert response.status_code == 200
        assert response.json()["role"] == "operator"
        assert not AuditEvent.objects.filter(action="user.role_change").exists()

    @pytest.mark.parametrize(
        ("body", "errors"),
        [
            ({"role": "boss"}, {"role": ['"boss" is not a valid choice.']}),
            ({}, {"role": ["This field is required."]}),
            ({"role": "admin", "is_active": False}, {"is_active": ["Unknown field."]}),
        ],
    )
    def test_bad_bodies_are_400(self, admin_client, admin_user, operator_user, body, errors):
        response = admin_client.put(role_url(operator_user), body, format="json")
        assert response.status_code == 400
        assert response.json() == errors
        operator_user.refresh_from_db()
        assert operator_user.role == Role.OPERATOR

    def test_another_tenants_user_is_404_and_unchanged(self, admin_client, admin_user, other_tenant_user):
        response = admin_client.put(role_url(other_tenant_user), {"role": "admin"}, format="json")
        assert response.status_code == 404
        other_tenant_user.refresh_from_db()
        assert other_tenant_user.role == Role.OPERATOR

    def test_patch_and_post_are_405(self, admin_client, admin_user, operator_user):
        assert admin_client.patch(role_url(operator_user), {"role": "admin"}, format="json").status_code == 405
        assert admin_client.post(role_url(operator_user), {"role": "admin"}, format="json").status_code == 405


class TestDeactivate:
    def test_deactivation_is_204_and_keeps_the_users_data(self, admin_client, admin_user, operator_user):
        response = admin_client.delete(user_url(operator_user))
        assert response.status_code == 204
        assert response.content == b""
        user = User.objects.get(pk=operator_user.pk)
        assert (user.is_active, user.email, user.role, user.full_name) == (
            False,
            "operator@acme.test",
            Role.OPERATOR,
            operator_user.full_name,
        )
        listed = {item["email"]: item["is_active"] for item in admin_client.get(USERS_URL).json()}
        assert listed["operator@acme.test"] is False

    def test_every_earlier_token_of_the_user_stops_working(self, admin_client, admin_user, operator_user):
        tokens = token_pair_for(operator_user)
        assert bearer(tokens["access"]).get("/api/v1/settings/profile").status_code == 200
        assert admin_client.delete(user_url(operator_user)).status_code == 204
        assert bearer(tokens["access"]).get("/api/v1/settings/profile").status_code == 401
        assert bearer("").post(REFRESH_URL, {"refresh": tokens["refresh"]}, format="json").status_code == 401
        operator_user.refresh_from_db()
        assert operator_user.token_version == 2  # 1 from the factory's set_password, 1 from deactivation

    def test_a_deactivated_user_cannot_log_in(self, admin_client, admin_user, operator_user, login, password):
        admin_client.delete(user_url(operator_user))
        response = login(operator_user.email, password)
        assert response.status_code == 401

    def test_deactivation_is_audited(self, admin_client, admin_user, operator_user):
        admin_client.delete(user_url(operator_user))
        event = AuditEvent.objects.get(action="user.deactivate")
        assert (event.actor_id, event.target_id, event.tenant_id) == (
            admin_user.id,
            str(operator_user.id),
            admin_user.tenant_id,
        )

    def test_another_admin_can_be_deactivated(self, admin_client, admin_user, second_admin):
        assert admin_client.delete(user_url(second_admin)).status_code == 204
        second_admin.refresh_from_db()
        assert second_admin.is_active is False

    def test_self_deactivation_is_400(self, admin_client, admin_user, second_admin):
        response = admin_client.delete(user_url(admin_user))
        assert response.status_code == 400
        assert response.json() == {"detail": "You cannot deactivate your own account."}
        admin_user.refresh_from_db()
        assert admin_user.is_active is True

    def test_an_already_inactive_user_is_204_and_nothing_changes(self, admin_client, admin_user, inactive_user):
        version = inactive_user.token_version
        response = admin_client.delete(user_url(inactive_user))
        assert response.status_code == 204
        inactive_user.refresh_from_db()
        assert (inactive_user.is_active, inactive_user.token_version) == (False, version)
        assert not AuditEvent.objects.filter(action="user.deactivate").exists()

    def test_another_tenants_user_is_404_and_stays_active(self, admin_client, admin_user, other_tenant_user):
        response = admin_client.delete(user_url(other_tenant_user))
        assert response.status_code == 404
        other_tenant_user.refresh_from_db()
        assert other_tenant_user.is_active is True

    def test_other_tenants_admin_cannot_touch_this_tenants_users(
        self, other_tenant_admin_client, admin_user, operator_user
    ):
        assert other_tenant_admin_client.get(user_url(operator_user)).status_code == 404
        assert other_tenant_admin_client.put(role_url(admin_user), {"role": "viewer"}, format="json").status_code == 404
        assert other_tenant_admin_client.delete(user_url(admin_user)).status_code == 404
        admin_user.refresh_from_db()
        assert (admin_user.role, admin_user.is_active) == (Role.ADMIN, True)


class TestActiveFilterIsStrict:
    """Found by Schemathesis over HTTP: `?is_active=2` listed everyone instead of refusing."""

    @pytest.mark.parametrize("value", ["2", "yes", "TRUE ", ""])
    def test_a_value_other_than_true_or_false_is_a_400(self, admin_client, value):
        response = admin_client.get("/api/v1/users", {"is_active": value})
        if value == "":
            assert response.status_code == 200  # an empty parameter is no filter, as for every filter
        else:
            assert response.status_code == 400
            assert list(response.json()) == ["is_active"]

    def test_true_and_false_filter(self, admin_client, admin_user, tenant):
        from users.tests.factories import UserFactory

        UserFactory(tenant=tenant, is_active=False, email="gone@acme.test")
        active = admin_client.get("/api/v1/users", {"is_active": "true"}).json()
        inactive = admin_client.get("/api/v1/users", {"is_active": "false"}).json()
        assert [u["email"] for u in inactive] == ["gone@acme.test"]
        assert "gone@acme.test" not in [u["email"] for u in active]


class TestRenameAndReactivate:
    """PATCH /users/{id} (full_name) and POST /users/{id}/reactivate, admin only, audited."""

    def test_an_admin_renames_a_user(self, admin_client, operator_user):
        response = admin_client.patch(f"/api/v1/users/{operator_user.pk}", {"full_name": "  Olga Operator "})
        assert response.status_code == 200
        assert response.json()["full_name"] == "Olga Operator"
        event = AuditEvent.objects.get(action="user.update")
        assert event.changes == {"full_name": {"from": operator_user.full_name, "to": "Olga Operator"}}

    def test_only_the_name_changes_here(self, admin_client, operator_user):
        response = admin_client.patch(f"/api/v1/users/{operator_user.pk}", {"full_name": "X", "role": "admin"})
        assert response.status_code == 400
        assert response.json() == {"role": ["Unknown field."]}

    def test_reactivating_lets_the_user_back_in(self, admin_client, inactive_user, login, password):
        response = admin_client.post(f"/api/v1/users/{inactive_user.pk}/reactivate")
        assert response.status_code == 200
        assert response.json()["is_active"] is True
        assert AuditEvent.objects.filter(action="user.reactivate", target_id=str(inactive_user.pk)).count() == 1
        assert login(inactive_user.email, password).status_code == 200

    def test_another_tenants_user_is_not_found(self, other_tenant_admin_client, inactive_user):
        assert other_tenant_admin_client.post(f"/api/v1/users/{inactive_user.pk}/reactivate").status_code == 404
        assert (
            other_tenant_admin_client.patch(f"/api/v1/users/{inactive_user.pk}", {"full_name": "x"}).status_code == 404
        )


class TestAnAdminDemotedMeanwhile:
    def test_is_refused_under_the_lock(self, admin_user, second_admin, operator_user):
        """The rights were checked on a user row loaded before a concurrent demotion (the race's loser)."""
        from django.core.exceptions import PermissionDenied

        from core.caller import Caller
        from users.services import user_role_change

        User.objects.filter(pk=admin_user.pk).update(role=Role.OPERATOR)  # admin_user is the stale row
        with pytest.raises(PermissionDenied) as refused:
            user_role_change(by=Caller.acting(admin_user), user=operator_user, role=Role.VIEWER)
        assert str(refused.value) == "Only an active tenant admin may do this."
        operator_user.refresh_from_db()
        assert operator_user.role == Role.OPERATOR
