import factory

from settings_app.models import AiSettings, DashboardPreset, RolePermission, UnitPreference
from tenants.tests.factories import TenantFactory
from users.tests.factories import UserFactory


class RolePermissionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RolePermission

    tenant = factory.SubFactory(TenantFactory)
    role = RolePermission.ConfigurableRole.VIEWER
    settings_tabs = factory.LazyFunction(lambda: ["units"])
    nav_pages = factory.LazyFunction(lambda: ["dashboard"])


class AiSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AiSettings

    tenant = factory.SubFactory(TenantFactory)
    ai_provider = AiSettings.Provider.CUSTOM
    custom_ai_url = "http://192.168.1.50:11434"
    custom_ai_model = "llama3"


class DashboardPresetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DashboardPreset

    tenant = factory.SubFactory(TenantFactory)
    role = "operator"
    widgets = factory.LazyFunction(lambda: [{"id": "only", "labelKey": "k.only", "visible": True, "size": "full"}])
    stat_metrics = factory.LazyFunction(lambda: [{"metricId": "critical_count"}])


class UnitPreferenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UnitPreference

    user = factory.SubFactory(UserFactory)
    temperature = "fahrenheit"
