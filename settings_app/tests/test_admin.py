"""The Django admin pages of each setting: they save through the services (validated, audited)."""

import socket

import pytest

from audit.models import AuditEvent
from core.caller import Caller
from settings_app.crypto import decrypt_secret
from settings_app.models import AiSettings, DashboardPreset, RolePermission, UnitPreference
from settings_app.tests.factories import AiSettingsFactory, DashboardPresetFactory, RolePermissionFactory

pytestmark = pytest.mark.django_db
BASE = "/admin/settings_app"


class TestPagesRender:
    @pytest.mark.parametrize("model", ["rolepermission", "aisettings", "dashboardpreset", "unitpreference"])
    def test_list_and_add(self, staff_client, model):
        assert staff_client.get(f"{BASE}/{model}/").status_code == 200
        assert staff_client.get(f"{BASE}/{model}/add/").status_code == 200

    def test_change_pages(self, staff_client, tenant, viewer_user):
        pages = [
            f"{BASE}/rolepermission/{RolePermissionFactory(tenant=tenant).pk}/change/",
            f"{BASE}/aisettings/{AiSettingsFactory(tenant=tenant).pk}/change/",
            f"{BASE}/dashboardpreset/{DashboardPresetFactory(tenant=tenant).pk}/change/",
            f"{BASE}/unitpreference/{UnitPreference.objects.create(user=viewer_user).pk}/change/",
        ]
        for page in pages:
            assert staff_client.get(page).status_code == 200, page


class TestRolePermissionAdmin:
    def test_add_is_audited(self, staff_client, tenant):
        response = staff_client.post(
            f"{BASE}/rolepermission/add/",
            {"tenant": tenant.pk, "role": "viewer", "settings_tabs": ["units"], "nav_pages": ["dashboard", "alerts"]},
        )
        assert response.status_code == 302
        row = RolePermission.objects.get(tenant=tenant, role="viewer")
        assert (row.settings_tabs, row.nav_pages) == (["units"], ["dashboard", "alerts"])
        event = AuditEvent.objects.get(action="settings.role_permissions.update")
        assert event.actor_label == "staff@haltless.test"

    def test_unknown_tab_is_refused(self, staff_client, tenant):
        response = staff_client.post(
            f"{BASE}/rolepermission/add/",
            {"tenant": tenant.pk, "role": "viewer", "settings_tabs": ["billing"], "nav_pages": []},
        )
        assert response.status_code == 200
        assert "Select a valid choice" in response.content.decode()
        assert not RolePermission.objects.exists()


class TestAiSettingsAdmin:
    def test_key_is_write_only(self, staff_client, tenant):
        response = staff_client.post(
            f"{BASE}/aisettings/add/",
            {
                "tenant": tenant.pk,
                "ai_provider": "custom",
                "custom_ai_url": "http://192.168.1.50:11434",
                "custom_ai_model": "llama3",
                "new_custom_ai_api_key": "sk-admin-secret",
            },
        )
        assert response.status_code == 302
        ai = AiSettings.objects.get(tenant=tenant)
        assert decrypt_secret(ai.custom_ai_api_key_encrypted) == "sk-admin-secret"
        page = staff_client.get(f"{BASE}/aisettings/{ai.pk}/change/").content.decode()
        assert "sk-admin-secret" not in page
        assert ai.custom_ai_api_key_encrypted not in page
        assert "sk-admin-secret" not in str(AuditEvent.objects.get(action="settings.ai.update").changes)

    def test_refused_url_is_a_form_error(self, staff_client, tenant):
        response = staff_client.post(
            f"{BASE}/aisettings/add/",
            {
                "tenant": tenant.pk,
                "ai_provider": "custom",
                "custom_ai_url": "http://169.254.169.254/",
                "custom_ai_model": "llama3",
            },
        )
        assert response.status_code == 200
        assert "cloud metadata address" in response.content.decode()
        assert not AiSettings.objects.exists()

    def test_clear_key(self, staff_client, tenant):
        from settings_app.services import ai_settings_update

        ai = ai_settings_update(
            by=Caller.system(tenant_id=tenant.pk),
            changes={
                "ai_provider": "custom",
                "custom_ai_url": "http://192.168.1.50:11434",
                "custom_ai_model": "llama3",
                "custom_ai_api_key": "sk-1",
            },
        )
        response = staff_client.post(
            f"{BASE}/aisettings/{ai.pk}/change/",
            {
                "ai_provider": "custom",
                "custom_ai_url": "http://192.168.1.50:11434",
                "custom_ai_model": "llama3",
                "clear_custom_ai_api_key": "on",
            },
        )
        assert response.status_code == 302
        assert AiSettings.objects.get(pk=ai.pk).custom_ai_api_key_set is False


def preset_rows(*widgets, metrics=()) -> dict:
    """The add form's rows: widgets as (order, id, label key, size, visible), metrics as ids."""
    data = {}
    for i, (order, widget_id, label_key, size, visible) in enumerate(widgets):
        data.update(
            {
                f"widget_{i}_order": str(order),
                f"widget_{i}_id": widget_id,
                f"widget_{i}_label_key": label_key,
                f"widget_{i}_size": size,
            }
        )
        if visible:
            data[f"widget_{i}_visible"] = "on"
    for i, metric in enumerate(metrics):
        data[f"metric_{i}"] = metric
    return data


class TestDashboardPresetAdmin:
    def test_the_form_has_rows_with_choices_not_json(self, staff_client):
        page = staff_client.get(f"{BASE}/dashboardpreset/add/").content.decode()
        assert 'name="widgets"' not in page and 'name="stat_metrics"' not in page
        assert '<select name="widget_0_size"' in page and '<option value="quarter">' in page
        assert 'type="checkbox" name="widget_0_visible"' in page
        assert 'name="metric_0"' in page

    def test_malformed_widgets_are_refused_with_sentences(self, staff_client, tenant):
        data = {"tenant": tenant.pk, "role": "viewer", **preset_rows((1, "a", "", "full", True))}
        response = staff_client.post(f"{BASE}/dashboardpreset/add/", data)
        assert response.status_code == 200
        page = response.content.decode()
        assert "widgets, item 1, labelKey: This field may not be blank." in page
        assert "ErrorDetail" not in page and "string=" not in page
        assert not DashboardPreset.objects.exists()

    def test_an_id_that_is_no_identifier_is_refused_in_the_apis_words(self, staff_client, tenant):
        rows = preset_rows((1, "-a", "k", "full", True), metrics=["ok", "no way"])
        response = staff_client.post(f"{BASE}/dashboardpreset/add/", {"tenant": tenant.pk, "role": "viewer", **rows})
        page = response.content.decode()
        assert "widgets, item 1, id: Use letters, digits and - _ . : only, starting with a letter or digit." in page
        assert (
            "statMetrics, item 2, metricId: Use letters, digits and - _ . : only, starting with a letter or digit."
            in page
        )
        assert not DashboardPreset.objects.exists()

    def test_a_repeated_widget_id_is_refused(self, staff_client, tenant):
        rows = preset_rows((1, "a", "k", "full", True), (2, "a", "k2", "half", True))
        response = staff_client.post(f"{BASE}/dashboardpreset/add/", {"tenant": tenant.pk, "role": "viewer", **rows})
        assert "widgets: Each widget id may appear once; repeated: a." in response.content.decode()
        assert not DashboardPreset.objects.exists()

    def test_valid_preset_is_saved_in_order_and_audited(self, staff_client, tenant):
        rows = preset_rows(
            (2, "b", "k.b", "half", True), (1, "a", "k.a", "third", False), metrics=["critical_count", "uptime"]
        )
        response = staff_client.post(f"{BASE}/dashboardpreset/add/", {"tenant": tenant.pk, "role": "viewer", **rows})
        assert response.status_code == 302
        preset = DashboardPreset.objects.get(tenant=tenant, role="viewer")
        assert preset.widgets == [
            {"id": "a", "labelKey": "k.a", "visible": False, "size": "third"},
            {"id": "b", "labelKey": "k.b", "visible": True, "size": "half"},
        ]
        assert preset.stat_metrics == [{"metricId": "critical_count"}, {"metricId": "uptime"}]
        assert AuditEvent.objects.filter(action="settings.dashboard_preset.update").count() == 1

    def test_the_change_page_shows_the_saved_rows_and_keeps_them(self, staff_client, tenant):
        preset = DashboardPresetFactory(tenant=tenant)
        page = staff_client.get(f"{BASE}/dashboardpreset/{preset.pk}/change/").content.decode()
        first = preset.widgets[0]
        assert f'name="widget_0_id" value="{first["id"]}"' in page


class TestUnitPreferenceAdmin:
    def test_add(self, staff_client, viewer_user):
        response = staff_client.post(
            f"{BASE}/unitpreference/add/",
            {"user": viewer_user.pk, "temperature": "kelvin", "pressure": "bar", "vibration": "in_s"},
        )
        assert response.status_code == 302
        pref = UnitPreference.objects.get(user=viewer_user)
        assert pref.as_dict() == {"temperature": "kelvin", "pressure": "bar", "vibration": "in_s"}
        assert AuditEvent.objects.get(action="settings.units.update").tenant_id == viewer_user.tenant_id


class TestAiProbeButton:
    def test_the_change_page_has_the_button_and_plain_labels(self, staff_client, tenant):
        ai = AiSettingsFactory(tenant=tenant)
        page = staff_client.get(f"{BASE}/aisettings/{ai.pk}/change/").content.decode()
        assert f'action="/admin/settings_app/aisettings/{ai.pk}/probe/"' in page
        assert "AI provider" in page and "Ai provider" not in page

    def test_probing_the_platform_lists_its_models(self, staff_client, tenant):
        ai = AiSettingsFactory(tenant=tenant, ai_provider="platform")
        response = staff_client.post(f"{BASE}/aisettings/{ai.pk}/probe/", follow=True)
        text = " ".join(str(m) for m in response.context["messages"])
        assert "models:" in text

    def test_a_refused_address_is_an_error_message_and_no_connection(self, staff_client, tenant):
        ai = AiSettingsFactory(
            tenant=tenant, ai_provider="custom", custom_ai_url="http://169.254.169.254", custom_ai_model="m"
        )
        response = staff_client.post(f"{BASE}/aisettings/{ai.pk}/probe/", follow=True)
        shown = [(m.level_tag, str(m)) for m in response.context["messages"]]
        assert shown == [("error", "This address is not allowed for an AI server.")]
        assert AuditEvent.objects.filter(action="settings.ai.probe", tenant=tenant).count() == 1

    def test_a_malformed_saved_url_is_its_message_without_a_field_name(self, staff_client, tenant, connection_attempts):
        ai = AiSettingsFactory(tenant=tenant, ai_provider="custom", custom_ai_url="gopher://192.168.1.50/")
        response = staff_client.post(f"{BASE}/aisettings/{ai.pk}/probe/", follow=True)
        shown = [(m.level_tag, str(m)) for m in response.context["messages"]]
        assert shown == [("error", "Only http:// and https:// URLs are allowed.")]

    def test_a_failed_probe_names_the_origin(self, staff_client, tenant, settings):
        settings.AI_PROBE_ALLOW_LOOPBACK = True
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # closed again before the probe: nothing listens
        ai = AiSettingsFactory(tenant=tenant, ai_provider="custom", custom_ai_url=f"http://127.0.0.1:{port}/ollama")
        response = staff_client.post(f"{BASE}/aisettings/{ai.pk}/probe/", follow=True)
        shown = [(m.level_tag, str(m)) for m in response.context["messages"]]
        assert shown == [("error", f"No Ollama or OpenAI-compatible server answered at http://127.0.0.1:{port}.")]

    def test_get_is_not_allowed(self, staff_client, tenant):
        ai = AiSettingsFactory(tenant=tenant)
        assert staff_client.get(f"{BASE}/aisettings/{ai.pk}/probe/").status_code == 405
