import pytest
from django.core.management import call_command

from users.models import User

TOKEN_URL = "/api/v1/auth/token"
REFRESH_URL = "/api/v1/auth/token/refresh"
pytestmark = pytest.mark.django_db


def login(client, email, password):
    return client.post(TOKEN_URL, {"email": email, "password": password}, format="json")


class TestLogin:
    def test_valid_credentials_give_a_token_pair(self, api_client, admin_user, password):
        response = login(api_client, admin_user.email, password)
        assert response.status_code == 200
        assert set(response.json()) == {"access", "refresh"}

    def test_email_is_case_insensitive(self, api_client, admin_user, password):
        response = login(api_client, "  ADMIN@Acme.Test ", password)
        assert response.status_code == 200

    def test_wrong_password_is_401_with_challenge(self, api_client, admin_user):
        response = login(api_client, admin_user.email, "not-the-password")
        assert response.status_code == 401
        assert response.json() == {"detail": "No active account found with the given credentials."}
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'

    def test_unknown_email_is_the_same_401(self, api_client, db):
        response = login(api_client, "nobody@acme.test", "whatever-password")
        assert response.status_code == 401
        assert response.json() == {"detail": "No active account found with the given credentials."}

    def test_inactive_user_cannot_log_in(self, api_client, admin_user, password):
        admin_user.is_active = False
        admin_user.save()
        assert login(api_client, admin_user.email, password).status_code == 401

    def test_missing_fields_are_400(self, api_client, db):
        response = api_client.post(TOKEN_URL, {}, format="json")
        assert response.status_code == 400
        assert set(response.json()) == {"email", "password"}

    def test_unknown_field_is_400(self, api_client, admin_user, password):
        response = api_client.post(
            TOKEN_URL, {"email": admin_user.email, "password": password, "otp": "1"}, format="json"
        )
        assert response.status_code == 400
        assert response.json() == {"otp": ["Unknown field."]}

    def test_login_records_last_login(self, api_client, admin_user, password):
        login(api_client, admin_user.email, password)
        admin_user.refresh_from_db()
        assert admin_user.last_login is not None


class TestLoginThrottling:
    def test_repeated_failures_for_one_account_are_throttled(self, api_client, admin_user, password, settings):
        for _ in range(10):
            assert login(api_client, admin_user.email, "wrong-password").status_code == 401
        response = login(api_client, admin_user.email, password)
        assert response.status_code == 429
        assert "Retry-After" in response.headers

    def test_failures_from_one_address_are_throttled_across_accounts(self, api_client, db):
        for i in range(30):
            assert login(api_client, f"probe{i}@acme.test", "wrong-password").status_code == 401
        assert login(api_client, "another@acme.test", "wrong-password").status_code == 429

    def test_successful_logins_do_not_count(self, api_client, admin_user, password):
        for _ in range(15):
            assert login(api_client, admin_user.email, password).status_code == 200


class TestRefresh:
    def test_refresh_gives_a_new_access_token(self, api_client, admin_user, password):
        refresh = login(api_client, admin_user.email, password).json()["refresh"]
        response = api_client.post(REFRESH_URL, {"refresh": refresh}, format="json")
        assert response.status_code == 200
        assert set(response.json()) == {"access"}

    def test_garbage_refresh_token_is_401(self, api_client, db):
        response = api_client.post(REFRESH_URL, {"refresh": "not-a-token"}, format="json")
        assert response.status_code == 401

    def test_access_token_is_not_a_refresh_token(self, api_client, admin_user, password):
        access = login(api_client, admin_user.email, password).json()["access"]
        assert api_client.post(REFRESH_URL, {"refresh": access}, format="json").status_code == 401

    def test_a_deactivated_users_refresh_token_is_refused(self, api_client, admin_user, password):
        refresh = login(api_client, admin_user.email, password).json()["refresh"]
        User.objects.filter(pk=admin_user.pk).update(is_active=False)
        response = api_client.post(REFRESH_URL, {"refresh": refresh}, format="json")
        assert response.status_code == 401
        assert response.json() == {"detail": "No active account found for the given token."}


USER_LOGIN_REQUIRED = {"detail": "This endpoint requires a user login; API keys are not accepted here."}


class TestAuthEndpointsRefuseApiKeys:
    """An API key is no way to get or renew a user's tokens: 403, whatever the body says."""

    @pytest.fixture
    def bodies(self, api_client, admin_user, password):
        refresh = login(api_client, admin_user.email, password).json()["refresh"]
        return {
            TOKEN_URL: {"email": admin_user.email, "password": password},
            REFRESH_URL: {"refresh": refresh},
        }

    @pytest.mark.parametrize("url", [TOKEN_URL, REFRESH_URL])
    @pytest.mark.parametrize("header", ["HTTP_X_API_KEY", "HTTP_AUTHORIZATION"])
    def test_a_valid_api_key_is_refused(self, api_client, api_key, bodies, url, header):
        value = api_key.secret if header == "HTTP_X_API_KEY" else f"Bearer {api_key.secret}"
        response = api_client.post(url, bodies[url], format="json", **{header: value})
        assert response.status_code == 403
        assert response.json() == USER_LOGIN_REQUIRED

    def test_a_malformed_api_key_is_the_usual_401(self, api_client, bodies):
        response = api_client.post(TOKEN_URL, bodies[TOKEN_URL], format="json", HTTP_X_API_KEY="hlts_nonsense")
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid API key."}

    def test_a_refused_key_uses_no_login_budget(self, api_client, api_key, admin_user, password):
        for _ in range(15):
            response = api_client.post(
                TOKEN_URL,
                {"email": admin_user.email, "password": "wrong"},
                format="json",
                HTTP_X_API_KEY=api_key.secret,
            )
            assert response.status_code == 403
        assert login(api_client, admin_user.email, password).status_code == 200

    def test_a_stale_jwt_in_the_header_does_not_block_a_login(self, api_client, admin_user, password):
        response = api_client.post(
            TOKEN_URL,
            {"email": admin_user.email, "password": password},
            format="json",
            HTTP_AUTHORIZATION="Bearer eyJ.stale.token",
        )
        assert response.status_code == 200


class TestRevocation:
    """Tokens issued before a password change or deactivation stop working at once."""

    def _tokens(self, api_client, user, password):
        return login(api_client, user.email, password).json()

    def _me_status(self, api_client, access):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
        status = api_client.get("/api/v1/settings/profile").status_code
        api_client.credentials()
        return status

    def test_password_change_revokes_access_and_refresh(self, api_client, admin_user, password):
        tokens = self._tokens(api_client, admin_user, password)
        assert self._me_status(api_client, tokens["access"]) != 401
        user = User.objects.get(pk=admin_user.pk)
        user.set_password("An0ther-Secret-Phrase")
        user.save()
        assert self._me_status(api_client, tokens["access"]) == 401
        response = api_client.post(REFRESH_URL, {"refresh": tokens["refresh"]}, format="json")
        assert response.status_code == 401

    def test_deactivation_revokes_access_and_refresh(self, api_client, admin_user, password):
        tokens = self._tokens(api_client, admin_user, password)
        User.objects.filter(pk=admin_user.pk).update(is_active=False)
        assert self._me_status(api_client, tokens["access"]) == 401
        assert api_client.post(REFRESH_URL, {"refresh": tokens["refresh"]}, format="json").status_code == 401

    def test_bad_bearer_token_is_401(self, api_client, db):
        api_client.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
        response = api_client.get("/api/v1/settings/profile")
        assert response.status_code == 401
        assert "WWW-Authenticate" in response.headers


class TestCreateUserCommand:
    def test_creates_a_user_and_prints_its_id(self, tenant, capsys):
        call_command(
            "create_user",
            "--tenant",
            tenant.name,
            "--email",
            "New@Acme.test",
            "--password",
            "Long-enough-pass-1",
            "--role",
            "operator",
            "--full-name",
            "New Person",
        )
        user = User.objects.get(email="new@acme.test")
        assert capsys.readouterr().out.strip() == str(user.id)
        assert (user.role, user.tenant_id, user.full_name) == ("operator", tenant.id, "New Person")

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--tenant", "Nope"], "No tenant with id or name 'Nope'."),
            (["--role", "boss"], "role: Unknown role 'boss'; choose one of: admin, operator, viewer."),
            (["--password", "short"], "password: This password is too short."),
        ],
    )
    def test_bad_input_fails_with_one_line(self, tenant, args, message):
        base = {"--tenant": tenant.name, "--email": "x@acme.test", "--password": "Long-enough-pass-1"}
        base.update(dict(zip(args[::2], args[1::2], strict=True)))
        argv = [item for pair in base.items() for item in pair]
        with pytest.raises(Exception) as excinfo:
            call_command("create_user", *argv)
        assert message in str(excinfo.value)
        assert "\n" not in str(excinfo.value)
        assert not User.objects.filter(email="x@acme.test").exists()
