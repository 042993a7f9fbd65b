from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from core.serializers import StrictSerializer
from settings_app import access, dashboard, validators
from settings_app.models import AiSettings
from settings_app.services import MAX_AI_API_KEY_LENGTH
from settings_app.units import UNIT_CHOICES
from users.models import Role


class StrictCharField(serializers.CharField):
    """A string and nothing else: DRF's CharField would turn 5 into "5"."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false only: DRF's BooleanField would also take "yes", 1 and "on"."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


# --- Role permissions -----------------------------------------------------------------


class RoleAccessSerializer(StrictSerializer):
    settings = serializers.ListField(
        child=serializers.ChoiceField(
            choices=access.SETTINGS_TABS, error_messages={"invalid_choice": validators.UNKNOWN_ENTRY["settings"]}
        ),
        max_length=len(access.SETTINGS_TABS) * 2,
        help_text=f"Settings tabs the role is shown; any of: {', '.join(access.SETTINGS_TABS)}.",
    )
    nav = serializers.ListField(
        child=serializers.ChoiceField(
            choices=access.NAV_PAGES, error_messages={"invalid_choice": validators.UNKNOWN_ENTRY["nav"]}
        ),
        max_length=len(access.NAV_PAGES) * 2,
        help_text=f"Nav pages the role is shown; any of: {', '.join(access.NAV_PAGES)}.",
    )


class RolePermissionsSerializer(StrictSerializer):
    """The whole mapping: a PUT replaces both roles, so both are required."""

    operator = RoleAccessSerializer()
    viewer = RoleAccessSerializer()

    def to_internal_value(self, data):
        if isinstance(data, dict):
            errors = {role: [message] for role in data if (message := validators.role_error(role))}
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


# --- /me ------------------------------------------------------------------------------


@extend_schema_serializer(component_name="MeUser")
class MeUserOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    full_name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


@extend_schema_serializer(component_name="MeTenant")
class MeTenantOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    tier = serializers.CharField()
    retention_days = serializers.IntegerField(allow_null=True)


@extend_schema_serializer(component_name="UnitPreferences")
class UnitPreferencesInputSerializer(StrictSerializer):
    temperature = serializers.ChoiceField(choices=UNIT_CHOICES["temperature"], required=False)
    pressure = serializers.ChoiceField(choices=UNIT_CHOICES["pressure"], required=False)
    vibration = serializers.ChoiceField(choices=UNIT_CHOICES["vibration"], required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for kind, field in self.fields.items():
            field.error_messages["invalid_choice"] = validators.unknown_unit_message(kind)


class UnitPreferencesOutputSerializer(serializers.Serializer):
    temperature = serializers.ChoiceField(choices=UNIT_CHOICES["temperature"])
    pressure = serializers.ChoiceField(choices=UNIT_CHOICES["pressure"])
    vibration = serializers.ChoiceField(choices=UNIT_CHOICES["vibration"])


@extend_schema_serializer(component_name="Me")
class MeOutputSerializer(serializers.Serializer):
    user = MeUserOutputSerializer()
    tenant = MeTenantOutputSerializer()
    permissions = RoleAccessSerializer(help_text="The settings tabs and nav pages the caller is shown.")
    units = UnitPreferencesOutputSerializer()


# --- AI settings -------------------------------------------------------------------------


class AiSettingsOutputSerializer(serializers.Serializer):
    ai_provider = serializers.ChoiceField(choices=AiSettings.Provider.choices)
    custom_ai_url = serializers.CharField(allow_null=True)
    custom_ai_model = serializers.CharField(allow_null=True)
    custom_ai_api_key_set = serializers.BooleanField(help_text="Whether an API key is stored; the key is never shown.")

    def to_representation(self, instance):
        return {
            "ai_provider": instance.ai_provider,
            "custom_ai_url": instance.custom_ai_url or None,
            "custom_ai_model": instance.custom_ai_model or None,
            "custom_ai_api_key_set": instance.custom_ai_api_key_set,
        }


@extend_schema_serializer(component_name="AiSettingsPatch")
class AiSettingsInputSerializer(StrictSerializer):
    ai_provider = serializers.ChoiceField(choices=AiSettings.Provider.choices, required=False)
    custom_ai_url = StrictCharField(
        max_length=2048, required=False, allow_null=True, allow_blank=True, help_text="null or empty clears it."
    )
    custom_ai_model = StrictCharField(max_length=200, required=False, allow_null=True, allow_blank=True)
    custom_ai_api_key = StrictCharField(
        max_length=MAX_AI_API_KEY_LENGTH,
        required=False,
        allow_null=True,
        allow_blank=True,
        write_only=True,
        help_text="Write-only, for OpenAI-compatible servers that need one; null or empty clears it. "
        "Sent only to the exact saved URL: cleared too when any part of the URL changes without a new key.",
    )


class AiModelsQuerySerializer(serializers.Serializer):
    probe_url = serializers.CharField(required=False, max_length=4096, trim_whitespace=True)


@extend_schema_serializer(component_name="AiModel")
class AiModelOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    size = serializers.IntegerField(required=False, help_text="Ollama only: bytes.")
    modified_at = serializers.CharField(required=False, help_text="Ollama only.")
    owned_by = serializers.CharField(required=False, help_text="OpenAI-compatible only.")


@extend_schema_serializer(component_name="AiModels")
class AiModelsOutputSerializer(serializers.Serializer):
    provider_type = serializers.ChoiceField(choices=["ollama", "openai", "platform"])
    models = AiModelOutputSerializer(many=True)


# --- Dashboard presets ------------------------------------------------------------------


def _identifier(**kwargs) -> StrictCharField:
    return StrictCharField(
        max_length=dashboard.MAX_IDENTIFIER_LENGTH,
        validators=[validators.validate_identifier],
        **kwargs,
    )


class WidgetSerializer(StrictSerializer):
    id = _identifier()
    labelKey = StrictCharField(max_length=dashboard.MAX_LABEL_KEY_LENGTH)
    visible = StrictBooleanField()
    size = serializers.ChoiceField(choices=dashboard.WIDGET_SIZES)


class StatMetricSerializer(StrictSerializer):
    metricId = _identifier()


@extend_schema_serializer(component_name="DashboardLayout")
class DashboardLayoutOutputSerializer(serializers.Serializer):
    widgets = WidgetSerializer(many=True)
    statMetrics = StatMetricSerializer(many=True)


@extend_schema_serializer(component_name="DashboardPresets")
class DashboardPresetListOutputSerializer(serializers.Serializer):
    admin = DashboardLayoutOutputSerializer()
    operator = DashboardLayoutOutputSerializer()
    viewer = DashboardLayoutOutputSerializer()


class DashboardPresetInputSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)
    widgets = WidgetSerializer(many=True, max_length=dashboard.MAX_WIDGETS)
    statMetrics = StatMetricSerializer(many=True, max_length=dashboard.MAX_STAT_METRICS)

    def validate_widgets(self, widgets):
        validators.validate_widget_ids_unique(widgets)
        return widgets

    def validate_statMetrics(self, metrics):
        validators.validate_metric_ids_unique(metrics)
        return metrics


@extend_schema_serializer(component_name="DashboardPreset")
class DashboardPresetOutputSerializer(DashboardLayoutOutputSerializer):
    role = serializers.ChoiceField(choices=Role.choices)
