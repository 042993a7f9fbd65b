import pytest

from audit.models import AuditEvent
from settings_app.models import UnitPreference
from settings_app.selectors import unit_preferences_get
from settings_app.tests.factories import UnitPreferenceFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/settings/units"
DEFAULTS = {"temperature": "celsius", "pressure": "bar", "vibration": "mm_s"}


class TestRead:
    @pytest.mark.parametrize("client_fixture", ["admin_client", "operator_client", "viewer_client"])
    def test_defaults(self, request, client_fixture):
        response = request.getfixturevalue(client_fixture).get(URL)
        assert response.status_code == 200
        assert response.json() == DEFAULTS

    def test_own_preferences_only(self, viewer_client, viewer_user, admin_user):
        UnitPreferenceFactory(user=admin_user, temperature="kelvin")
        UnitPreferenceFactory(user=viewer_user, pressure="psi", temperature="celsius")
        assert viewer_client.get(URL).json() == {**DEFAULTS, "pressure": "psi"}


class TestUpdate:
    def test_documented_example(self, viewer_client, viewer_user):
        response = viewer_client.patch(URL, {"temperature": "fahrenheit", "pressure": "bar"}, format="json")
        assert response.status_code == 200
        assert response.json() == {**DEFAULTS, "temperature": "fahrenheit"}
        assert unit_preferences_get(user=viewer_user) == {**DEFAULTS, "temperature": "fahrenheit"}
        event = AuditEvent.objects.get(action="settings.units.update")
        assert (event.tenant_id, event.actor_id) == (viewer_user.tenant_id, viewer_user.id)
        # Only what changed: pressure was already bar.
        assert event.changes == {"temperature": "fahrenheit"}

    @pytest.mark.parametrize(
        "change",
        [
            {"temperature": "kelvin"},
            {"pressure": "psi"},
            {"pressure": "kpa"},
            {"pressure": "mpa"},
            {"pressure": "atm"},
            {"vibration": "in_s"},
        ],
    )
    def test_every_choice(self, operator_client, change):
        response = operator_client.patch(URL, change, format="json")
        assert response.status_code == 200
        assert response.json() == {**DEFAULTS, **change}

    def test_does_not_touch_other_users(self, operator_client, viewer_user, other_tenant_admin):
        operator_client.patch(URL, {"vibration": "in_s"}, format="json")
        assert unit_preferences_get(user=viewer_user) == DEFAULTS
        assert unit_preferences_get(user=other_tenant_admin) == DEFAULTS

    def test_no_change_writes_nothing(self, viewer_client, viewer_user):
        response = viewer_client.patch(URL, {"temperature": "celsius"}, format="json")
        assert response.status_code == 200
        assert not UnitPreference.objects.filter(user=viewer_user).exists()
        assert not AuditEvent.objects.filter(action="settings.units.update").exists()

    @pytest.mark.parametrize(
        ("payload", "errors"),
        [
            (
                {"temperature": "rankine"},
                {"temperature": ['Unknown temperature unit "rankine"; choose one of: celsius, fahrenheit, kelvin.']},
            ),
            (
                {"pressure": "mmhg"},
                {"pressure": ['Unknown pressure unit "mmhg"; choose one of: bar, psi, kpa, mpa, atm.']},
            ),
            ({"vibration": "g"}, {"vibration": ['Unknown vibration unit "g"; choose one of: mm_s, in_s.']}),
            ({"temperature": None}, {"temperature": ["This field may not be null."]}),
            ({"speed": "rpm"}, {"speed": ["Unknown field."]}),
            ({"temperature": "kelvin", "length": "m"}, {"length": ["Unknown field."]}),
        ],
    )
    def test_unknown_is_400(self, viewer_client, viewer_user, payload, errors):
        response = viewer_client.patch(URL, payload, format="json")
        assert response.status_code == 400
        assert response.json() == errors
        assert unit_preferences_get(user=viewer_user) == DEFAULTS

    def test_put_is_not_offered(self, viewer_client):
        assert viewer_client.put(URL, DEFAULTS, format="json").status_code == 405


class TestService:
    def test_an_unknown_unit_is_refused_by_the_service_in_the_apis_words(self, viewer_user):
        from django.core.exceptions import ValidationError

        from core.caller import Caller
        from settings_app.services import unit_preferences_update

        with pytest.raises(ValidationError) as exc:
            unit_preferences_update(
                by=Caller.acting(viewer_user), user=viewer_user, changes={"vibration": "g", "speed": "rpm"}
            )
        assert exc.value.message_dict == {
            "vibration": ['Unknown vibration unit "g"; choose one of: mm_s, in_s.'],
            "speed": ["Unknown field."],
        }
        assert not UnitPreference.objects.exists()


class TestConversions:
    def test_a_preference_kind_is_shown_in_the_chosen_unit_and_others_have_none(self):
        from settings_app.units import convert, preferred_unit

        assert preferred_unit("pressure", {"pressure": "psi"}) == "psi"
        assert preferred_unit("temperature", {"pressure": "psi"}) == "celsius"
        assert preferred_unit("temperature", None) is None
        assert preferred_unit("current", {"pressure": "psi"}) is None  # telemetry's kinds are telemetry's
        assert convert("temperature", 100.0, "fahrenheit") == 212.0
        with pytest.raises(ValueError, match=r"^Cannot convert current to 'A'\.$"):
            convert("current", 1.0, "A")


def test_every_sensor_kind_has_a_canonical_unit_and_the_preference_kinds_start_with_it():
    from settings_app.units import DEFAULT_UNITS
    from telemetry.models import CANONICAL_UNITS, Sensor

    assert set(CANONICAL_UNITS) == set(Sensor.Kind.values)
    assert all(CANONICAL_UNITS[kind] == unit for kind, unit in DEFAULT_UNITS.items())
