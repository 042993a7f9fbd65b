import pytest

from audit.models import AuditEvent
from settings_app import dashboard
from settings_app.models import DashboardPreset
from settings_app.tests.factories import DashboardPresetFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/settings/dashboard-presets"
DOCS_EXAMPLE = {
    "role": "operator",
    "widgets": [
        {"id": "stat-cards", "labelKey": "...", "visible": True, "size": "full"},
        {"id": "at-risk-machines", "labelKey": "...", "visible": True, "size": "half"},
    ],
    "statMetrics": [{"metricId": "critical_count"}, {"metricId": "active_alerts"}],
}


def widget(**overrides):
    return {"id": "w1", "labelKey": "dashboard.widgets.w1", "visible": True, "size": "half", **overrides}


def body(**overrides):
    return {**DOCS_EXAMPLE, **overrides}


class TestRead:
    @pytest.mark.parametrize("client_fixture", ["admin_client", "operator_client", "viewer_client"])
    def test_defaults_for_every_role(self, request, client_fixture):
        response = request.getfixturevalue(client_fixture).get(URL)
        assert response.status_code == 200
        assert response.json() == dashboard.DEFAULT_PRESETS
        assert set(response.json()) == {"admin", "operator", "viewer"}

    def test_defaults_are_themselves_valid(self, admin_client):
        for role, preset in dashboard.DEFAULT_PRESETS.items():
            assert admin_client.put(URL, {"role": role, **preset}, format="json").status_code == 200

    def test_saved_preset_of_the_callers_tenant(self, viewer_client, tenant, other_tenant):
        DashboardPresetFactory(tenant=tenant, role="viewer")
        DashboardPresetFactory(tenant=other_tenant, role="operator")
        presets = viewer_client.get(URL).json()
        assert presets["viewer"] == {
            "widgets": [{"id": "only", "labelKey": "k.only", "visible": True, "size": "full"}],
            "statMetrics": [{"metricId": "critical_count"}],
        }
        assert presets["operator"] == dashboard.DEFAULT_PRESETS["operator"]


class TestSave:
    def test_documented_example(self, admin_client, admin_user, tenant):
        response = admin_client.put(URL, DOCS_EXAMPLE, format="json")
        assert response.status_code == 200
        assert response.json() == DOCS_EXAMPLE
        presets = admin_client.get(URL).json()
        assert presets["operator"] == {"widgets": DOCS_EXAMPLE["widgets"], "statMetrics": DOCS_EXAMPLE["statMetrics"]}
        assert presets["viewer"] == dashboard.DEFAULT_PRESETS["viewer"]
        event = AuditEvent.objects.get(tenant=tenant, action="settings.dashboard_preset.update")
        assert event.actor_id == admin_user.id
        assert event.changes == DOCS_EXAMPLE

    def test_saving_again_replaces(self, admin_client, tenant):
        admin_client.put(URL, DOCS_EXAMPLE, format="json")
        response = admin_client.put(URL, body(widgets=[widget(visible=False)], statMetrics=[]), format="json")
        assert response.status_code == 200
        assert DashboardPreset.objects.get(tenant=tenant, role="operator").widgets == [widget(visible=False)]
        # Unchanged saves are not audited twice.
        admin_client.put(URL, body(widgets=[widget(visible=False)], statMetrics=[]), format="json")
        assert AuditEvent.objects.filter(action="settings.dashboard_preset.update").count() == 2

    def test_admin_preset_can_be_saved(self, admin_client):
        assert admin_client.put(URL, body(role="admin"), format="json").status_code == 200

    def test_other_tenant_is_not_touched(self, admin_client, other_tenant_admin_client):
        admin_client.put(URL, DOCS_EXAMPLE, format="json")
        assert other_tenant_admin_client.get(URL).json()["operator"] == dashboard.DEFAULT_PRESETS["operator"]


class TestValidation:
    @pytest.mark.parametrize(
        ("payload", "errors"),
        [
            (body(role="guest"), {"role": ['"guest" is not a valid choice.']}),
            ({k: v for k, v in DOCS_EXAMPLE.items() if k != "role"}, {"role": ["This field is required."]}),
            ({k: v for k, v in DOCS_EXAMPLE.items() if k != "widgets"}, {"widgets": ["This field is required."]}),
            (
                {k: v for k, v in DOCS_EXAMPLE.items() if k != "statMetrics"},
                {"statMetrics": ["This field is required."]},
            ),
            (body(layout="grid"), {"layout": ["Unknown field."]}),
            (body(widgets=[widget(size="huge")]), {"widgets": {"0": {"size": ['"huge" is not a valid choice.']}}}),
            (body(widgets=[widget(visible="true")]), {"widgets": {"0": {"visible": ["Must be true or false."]}}}),
            (body(widgets=[widget(visible=1)]), {"widgets": {"0": {"visible": ["Must be true or false."]}}}),
            (body(widgets=[widget(visible=None)]), {"widgets": {"0": {"visible": ["This field may not be null."]}}}),
            (body(widgets=[widget(id=7)]), {"widgets": {"0": {"id": ["Must be a string."]}}}),
            (body(widgets=[widget(id="")]), {"widgets": {"0": {"id": ["This field may not be blank."]}}}),
            (
                body(widgets=[widget(id="a b")]),
                {"widgets": {"0": {"id": ["Use letters, digits and - _ . : only, starting with a letter or digit."]}}},
            ),
            (
                body(widgets=[widget(id="x" * 65)]),
                {"widgets": {"0": {"id": ["Ensure this field has no more than 64 characters."]}}},
            ),
            (body(widgets=[widget(labelKey=["a"])]), {"widgets": {"0": {"labelKey": ["Must be a string."]}}}),
            (body(widgets=[widget(colour="red")]), {"widgets": {"0": {"colour": ["Unknown field."]}}}),
            (
                body(widgets=[{"id": "w1", "visible": True, "size": "full"}]),
                {"widgets": {"0": {"labelKey": ["This field is required."]}}},
            ),
            (
                body(widgets=[widget(), widget(size="full")]),
                {"widgets": ["Each widget id may appear once; repeated: w1."]},
            ),
            (
                body(widgets=[widget(id=f"w{i}") for i in range(dashboard.MAX_WIDGETS + 1)]),
                {"widgets": {"non_field_errors": ["Ensure this field has no more than 50 elements."]}},
            ),
            (
                body(widgets={"id": "w1"}),
                {"widgets": {"non_field_errors": ['Expected a list of items but got type "dict".']}},
            ),
            (
                body(widgets=["stat-cards"]),
                {"widgets": {"0": {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}}},
            ),
            (body(statMetrics=[{}]), {"statMetrics": {"0": {"metricId": ["This field is required."]}}}),
            (body(statMetrics=[{"metricId": 3}]), {"statMetrics": {"0": {"metricId": ["Must be a string."]}}}),
            (
                body(statMetrics=[{"metricId": "a", "label": "x"}]),
                {"statMetrics": {"0": {"label": ["Unknown field."]}}},
            ),
            (
                body(statMetrics=[{"metricId": "a"}, {"metricId": "a"}]),
                {"statMetrics": ["Each metricId may appear once; repeated: a."]},
            ),
        ],
    )
    def test_malformed_is_400_and_nothing_is_saved(self, admin_client, tenant, payload, errors):
        response = admin_client.put(URL, payload, format="json")
        assert response.status_code == 400
        assert response.json() == errors
        assert not DashboardPreset.objects.filter(tenant=tenant).exists()

    def test_not_an_object(self, admin_client):
        response = admin_client.put(URL, [DOCS_EXAMPLE], format="json")
        assert response.status_code == 400
        assert response.json() == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}


class TestService:
    """The service checks a preset itself (the admin's form and any other caller), in the API's words."""

    def test_a_malformed_preset_is_refused_with_sentences(self, tenant):
        from django.core.exceptions import ValidationError

        from core.caller import Caller
        from settings_app.services import dashboard_preset_save

        widgets = [
            {"id": "-x", "labelKey": " ", "visible": "yes", "size": "huge"},
            {"id": "a", "labelKey": "k", "visible": True, "size": "full", "colour": "red"},
        ]
        with pytest.raises(ValidationError) as exc:
            dashboard_preset_save(
                by=Caller.system(tenant_id=tenant.pk), role="guest", widgets=widgets, stat_metrics=[{}]
            )
        assert exc.value.messages == [
            'role: "guest" is not a valid choice.',
            "widgets, item 1, id: Use letters, digits and - _ . : only, starting with a letter or digit.",
            "widgets, item 1, labelKey: This field may not be blank.",
            "widgets, item 1, visible: Must be true or false.",
            'widgets, item 1, size: "huge" is not a valid choice.',
            "widgets, item 2, colour: Unknown field.",
            "statMetrics, item 1, metricId: This field is required.",
        ]
        assert not DashboardPreset.objects.exists()

    def test_repeated_ids_and_too_many_items_are_refused(self, tenant):
        from django.core.exceptions import ValidationError

        from core.caller import Caller
        from settings_app.services import dashboard_preset_save

        widget = {"id": "w1", "labelKey": "k", "visible": True, "size": "full"}
        with pytest.raises(ValidationError) as exc:
            dashboard_preset_save(
                by=Caller.system(tenant_id=tenant.pk),
                role="viewer",
                widgets=[widget, dict(widget)],
                stat_metrics=[{"metricId": "m"}] * 21,
            )
        assert exc.value.messages == [
            "widgets: Each widget id may appear once; repeated: w1.",
            "statMetrics: Ensure this field has no more than 20 elements.",
        ]
