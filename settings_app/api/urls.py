from django.urls import path

from settings_app.api import views

urlpatterns = [
    path("me", views.MeView.as_view(), name="me"),
    path("settings/role-permissions", views.RolePermissionsView.as_view(), name="role-permissions"),
    path("settings/ai", views.AiSettingsView.as_view(), name="ai-settings"),
    path("settings/ai/models", views.AiModelsView.as_view(), name="ai-models"),
    path("settings/dashboard-presets", views.DashboardPresetsView.as_view(), name="dashboard-presets"),
    path("settings/units", views.UnitPreferencesView.as_view(), name="unit-preferences"),
]
