import json

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from core.permissions import USER_LOGIN_REQUIRED
from users.models import Role, User
from users.services import WRONG_CURRENT_PASSWORD
from users.tests.factories import UserFactory
from users.tests.helpers import CHANGE_PASSWORD_URL, PROFILE_URL, REFRESH_URL, bearer
from users.tokens import token_pair_for

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Amber-Gearbox-Canal-91"
ROLE_USERS = ["admin_user", "operator_user", "viewer_user"]


class TestProfileRead:
    @pytest.mark.parametrize("user_fixture", ROLE_USERS)
    def test_every_role_reads_their_own_user(self, request, user_fixture):
        user = request.getfixturevalue(user_fixture)
        response = bearer(token_pair_for(user)["access"]).get(PROFILE_URL)
        assert response.status_code == 200
        assert response.json()["id"] == str(user.id)
        assert response.json()["email"] == user.email
        assert "password" not in response.json()

    def test_api_key_is_403(self, api_key):
        for method in ("get", "patch"):
            response = getattr(bearer(api_key.secret), method)(PROFILE_URL, {"full_name": "Robot"}, format="json")
            assert response.status_code == 403
            assert response.json() == {"detail": USER_LOGIN_REQUIRED}

    def test_anonymous_is_401(self, api_client):
        assert api_client.get(PROFILE_URL).status_code == 401
        assert api_client.patch(PROFILE_URL, {"full_name": "X"}, format="json").status_code == 401

    def test_put_is_405(self, viewer_client):
        response = viewer_client.put(PROFILE_URL, {"full_name": "X"}, format="json")
        assert response.status_code == 405


class TestProfileUpdate:
    @pytest.mark.parametrize("user_fixture", ROLE_USERS)
    def test_every_role_changes_their_full_name(self, request, user_fixture):
        user = request.getfixturevalue(user_fixture)
        response = bearer(token_pair_for(user)["access"]).patch(PROFILE_URL, {"full_name": " Jane Smith "})
        assert response.status_code == 200
        assert response.json()["full_name"] == "Jane Smith"
        user.refresh_from_db()
        assert user.full_name == "Jane Smith"
        event = AuditEvent.objects.get(action="user.profile_update")
        assert event.actor_id == user.id
        assert event.changes["full_name"]["to"] == "Jane Smith"

    def test_email_change_with_the_current_password(self, viewer_client, viewer_user, password, login):
        response = viewer_client.patch(
            PROFILE_URL, {"email": "Jane.Smith@Acme.test", "current_password": password}, format="json"
        )
        assert response.status_code == 200
        assert response.json()["email"] == "jane.smith@acme.test"
        viewer_user.refresh_from_db()
        assert viewer_user.email == "jane.smith@acme.test"
        assert login("jane.smith@acme.test", password).status_code == 200
        assert login("viewer@acme.test", password).status_code == 401
        # The caller's session goes on: an email change revokes nothing.
        assert viewer_client.get(PROFILE_URL).status_code == 200

    def test_email_change_is_audited_without_the_password(self, viewer_client, viewer_user, password):
        viewer_client.patch(PROFILE_URL, {"email": "jane@acme.test", "current_password": password}, format="json")
        event = AuditEvent.objects.get(action="user.email_change")
        assert event.changes == {"email": {"from": "viewer@acme.test", "to": "jane@acme.test"}}
        assert password not in json.dumps(event.changes)

    def test_email_change_without_current_password_is_400(self, viewer_client, viewer_user):
        response = viewer_client.patch(PROFILE_URL, {"email": "jane@acme.test"}, format="json")
        assert response.status_code == 400
        assert response.json() == {"current_password": ["Enter your current password to change your email."]}
        viewer_user.refresh_from_db()
        assert viewer_user.email == "viewer@acme.test"

    @pytest.mark.parametrize("wrong", ["not-my-password", ""])
    def test_email_change_with_a_wrong_current_password_is_400(self, viewer_client, viewer_user, wrong):
        body = {"email": "jane@acme.test", "current_password": wrong}
        response = viewer_client.patch(PROFILE_URL, body, format="json")
        assert response.status_code == 400
        assert list(response.json()) == ["current_password"]
        viewer_user.refresh_from_db()
        assert viewer_user.email == "viewer@acme.test"
        assert not AuditEvent.objects.exists()

    def test_wrong_current_password_message(self, viewer_client, viewer_user):
        body = {"email": "jane@acme.test", "current_password": "not-my-password"}
        response = viewer_client.patch(PROFILE_URL, body, format="json")
        assert response.json() == {"current_password": ["The current password is incorrect."]}

    @pytest.mark.parametrize("email", ["admin@acme.test", "ADMIN@acme.TEST", "admin@other.test"])
    def test_a_taken_email_is_400(self, viewer_client, viewer_user, admin_user, other_tenant_admin, password, email):
        response = viewer_client.patch(PROFILE_URL, {"email": email, "current_password": password}, format="json")
        assert response.status_code == 400
        assert response.json() == {"email": ["A user with this email already exists."]}
        viewer_user.refresh_from_db()
        assert viewer_user.email == "viewer@acme.test"

    def test_the_same_email_in_another_case_needs_no_password(self, viewer_client, viewer_user):
        response = viewer_client.patch(PROFILE_URL, {"email": "VIEWER@acme.test", "full_name": "V"}, format="json")
        assert response.status_code == 200
        assert response.json()["email"] == "viewer@acme.test"
        assert not AuditEvent.objects.filter(action="user.email_change").exists()

    def test_malformed_email_is_400(self, viewer_client, viewer_user, password):
        response = viewer_client.patch(PROFILE_URL, {"email": "nope", "current_password": password}, format="json")
        assert response.status_code == 400
        assert response.json() == {"email": ["Enter a valid email address."]}

    @pytest.mark.parametrize(
        ("field", "value"),
        [("role", "admin"), ("tenant", None), ("tenant_id", None), ("is_active", False), ("is_staff", True)],
    )
    def test_role_tenant_and_activity_cannot_be_changed_here(
        self, viewer_client, viewer_user, other_tenant, field, value
    ):
        value = str(other_tenant.id) if field.startswith("tenant") else value
        response = viewer_client.patch(PROFILE_URL, {field: value, "full_name": "Sneaky"}, format="json")
        assert response.status_code == 400
        assert response.json() == {field: ["Unknown field."]}
        viewer_user.refresh_from_db()
        assert (viewer_user.role, viewer_user.tenant_id, viewer_user.is_active, viewer_user.full_name) == (
            Role.VIEWER,
            viewer_user.tenant_id,
            True,
            viewer_user.full_name,
        )
        assert viewer_user.full_name != "Sneaky"

    def test_read_only_fields_are_rejected(self, viewer_client, viewer_user):
        response = viewer_client.patch(PROFILE_URL, {"id": "x", "last_login": None}, format="json")
        assert response.status_code == 400
        assert response.json() == {"id": ["Unknown field."], "last_login": ["Unknown field."]}

    def test_an_empty_patch_changes_nothing(self, viewer_client, viewer_user):
        response = viewer_client.patch(PROFILE_URL, {}, format="json")
        assert response.status_code == 200
        assert response.json()["email"] == "viewer@acme.test"
        assert not AuditEvent.objects.exists()

    def test_repeated_wrong_current_passwords_are_throttled(self, viewer_client, viewer_user, password):
        body = {"email": "jane@acme.test", "current_password": "wrong-guess"}
        for _ in range(10):
            assert viewer_client.patch(PROFILE_URL, body, format="json").status_code == 400
        response = viewer_client.patch(PROFILE_URL, {"email": "jane@acme.test", "current_password": password})
        assert response.status_code == 429
        assert "Retry-After" in response.headers
        # Reading the profile and changing the name are not held up.
        assert viewer_client.get(PROFILE_URL).status_code == 200
        assert viewer_client.patch(PROFILE_URL, {"full_name": "Still Me"}, format="json").status_code == 200


class TestChangePassword:
    @pytest.mark.parametrize("user_fixture", ROLE_USERS)
    def test_success_returns_a_fresh_pair_and_revokes_every_earlier_token(self, request, user_fixture, password, login):
        user = request.getfixturevalue(user_fixture)
        old = token_pair_for(user)
        other_session = login(user.email, password).json()
        response = bearer(old["access"]).post(
            CHANGE_PASSWORD_URL, {"current_password": password, "new_password": NEW_PASSWORD}, format="json"
        )
        assert response.status_code == 200
        fresh = response.json()
        assert set(fresh) == {"access", "refresh"}

        for access in (old["access"], other_session["access"]):
            revoked = bearer(access).get(PROFILE_URL)
            assert revoked.status_code == 401
            assert revoked.json()["detail"] == "Token has been revoked; log in again."
        for refresh in (old["refresh"], other_session["refresh"]):
            assert bearer("").post(REFRESH_URL, {"refresh": refresh}, format="json").status_code == 401

        assert bearer(fresh["access"]).get(PROFILE_URL).status_code == 200
        refreshed = bearer("").post(REFRESH_URL, {"refresh": fresh["refresh"]}, format="json")
        assert refreshed.status_code == 200
        assert bearer(refreshed.json()["access"]).get(PROFILE_URL).status_code == 200
        assert login(user.email, password).status_code == 401
        assert login(user.email, NEW_PASSWORD).status_code == 200

    def test_the_change_is_audited_without_any_password(self, viewer_client, viewer_user, password):
        viewer_client.post(CHANGE_PASSWORD_URL, {"current_password": password, "new_password": NEW_PASSWORD})
        event = AuditEvent.objects.get(action="user.password_change")
        assert (event.actor_id, event.target_id) == (viewer_user.id, str(viewer_user.id))
        assert event.changes == {}
        dumped = json.dumps(event.changes) + event.target_label + event.actor_label
        assert password not in dumped
        assert NEW_PASSWORD not in dumped

    def test_wrong_current_password_is_400_and_nothing_changes(self, viewer_client, viewer_user, password, login):
        response = viewer_client.post(
            CHANGE_PASSWORD_URL, {"current_password": "not-it-at-all", "new_password": NEW_PASSWORD}
        )
        assert response.status_code == 400
        assert response.json() == {"current_password": [WRONG_CURRENT_PASSWORD]}
        assert viewer_client.get(PROFILE_URL).status_code == 200  # the session still works
        assert login(viewer_user.email, password).status_code == 200
        assert not AuditEvent.objects.exists()

    @pytest.mark.parametrize(
        ("new_password", "message"),
        [
            ("Sh0rt-pw", "This password is too short. It must contain at least 10 characters."),
            ("qwertyuiop", "This password is too common."),
            ("73649182736", "This password is entirely numeric."),
            ("viewer@acme.test", "The password is too similar to the email."),
        ],
    )
    def test_a_new_password_the_validators_refuse_is_400_with_the_reason(
        self, viewer_client, viewer_user, password, new_password, message, login
    ):
        response = viewer_client.post(CHANGE_PASSWORD_URL, {"current_password": password, "new_password": new_password})
        assert response.status_code == 400
        assert message in response.json()["new_password"]
        assert viewer_client.get(PROFILE_URL).status_code == 200
        assert login(viewer_user.email, password).status_code == 200

    def test_a_new_password_similar_to_the_full_name_is_400(self, tenant, password):
        user = UserFactory(tenant=tenant, full_name="Margaretha Vandersloot")
        response = bearer(token_pair_for(user)["access"]).post(
            CHANGE_PASSWORD_URL, {"current_password": password, "new_password": "MargarethaVandersloot"}
        )
        assert response.status_code == 400
        assert response.json() == {"new_password": ["The password is too similar to the full name."]}

    def test_the_same_password_is_400(self, viewer_client, viewer_user, password):
        response = viewer_client.post(CHANGE_PASSWORD_URL, {"current_password": password, "new_password": password})
        assert response.status_code == 400
        assert response.json() == {"new_password": ["The new password must differ from the current one."]}

    @pytest.mark.parametrize(
        ("body", "errors"),
        [
            ({}, {"current_password": ["This field is required."], "new_password": ["This field is required."]}),
            ({"current_password": "x", "new_password": "y", "confirm": "y"}, {"confirm": ["Unknown field."]}),
        ],
    )
    def test_bad_bodies_are_400(self, viewer_client, viewer_user, body, errors):
        response = viewer_client.post(CHANGE_PASSWORD_URL, body, format="json")
        assert response.status_code == 400
        assert response.json() == errors

    def test_api_key_is_403(self, read_only_key, password):
        response = bearer(read_only_key.secret).post(
            CHANGE_PASSWORD_URL, {"current_password": password, "new_password": NEW_PASSWORD}
        )
        assert response.status_code == 403
        assert response.json() == {"detail": USER_LOGIN_REQUIRED}

    def test_anonymous_is_401(self, api_client):
        response = api_client.post(CHANGE_PASSWORD_URL, {"current_password": "a", "new_password": NEW_PASSWORD})
        assert response.status_code == 401

    def test_repeated_wrong_current_passwords_are_throttled(self, viewer_client, viewer_user, password):
        for _ in range(10):
            body = {"current_password": "wrong-guess", "new_password": NEW_PASSWORD}
            assert viewer_client.post(CHANGE_PASSWORD_URL, body).status_code == 400
        response = viewer_client.post(CHANGE_PASSWORD_URL, {"current_password": password, "new_password": NEW_PASSWORD})
        assert response.status_code == 429
        assert viewer_client.get(PROFILE_URL).status_code == 200

    def test_the_throttle_is_per_user(self, viewer_client, operator_client, password):
        for _ in range(10):
            viewer_client.post(CHANGE_PASSWORD_URL, {"current_password": "wrong-guess", "new_password": NEW_PASSWORD})
        response = operator_client.post(
            CHANGE_PASSWORD_URL, {"current_password": password, "new_password": NEW_PASSWORD}
        )
        assert response.status_code == 200


class TestPasswordPolicy:
    """The configured validators: at least 10 characters, not common, not numeric, not like the email or name."""

    @pytest.fixture
    def person(self):
        return User(email="grace.hopper@acme.test", full_name="Grace Hopper")

    def test_ten_characters_are_enough_and_nine_are_not(self, person):
        validate_password("Xq7#vL2pZk", person)
        with pytest.raises(ValidationError) as excinfo:
            validate_password("Xq7#vL2pZ", person)
        assert excinfo.value.messages == ["This password is too short. It must contain at least 10 characters."]

    @pytest.mark.parametrize(
        ("candidate", "message"),
        [
            ("iloveyou123", "This password is too common."),
            ("1234509876", "This password is entirely numeric."),
            ("grace.hopper", "The password is too similar to the email."),
            ("GraceHopper1", "The password is too similar to the full name."),
        ],
    )
    def test_weak_passwords_are_refused(self, person, candidate, message):
        with pytest.raises(ValidationError) as excinfo:
            validate_password(candidate, person)
        assert message in excinfo.value.messages


class TestPasswordRehash:
    def test_a_rehash_on_login_revokes_no_session(self, admin_user, password, login, settings):
        version = admin_user.token_version
        old = token_pair_for(admin_user)
        # A stronger default hasher: Django re-hashes the MD5 hash on the next correct login.
        settings.PASSWORD_HASHERS = [
            "django.contrib.auth.hashers.PBKDF2PasswordHasher",
            "django.contrib.auth.hashers.MD5PasswordHasher",
        ]
        assert login(admin_user.email, password).status_code == 200
        admin_user.refresh_from_db()
        assert admin_user.password.startswith("pbkdf2_sha256$")
        assert admin_user.token_version == version
        assert bearer(old["access"]).get(PROFILE_URL).status_code == 200
