"""Tenant settings endpoints: thin, each a selector to read and a service to write."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from core.caller import caller_of
from core.permissions import ApiAccess, IsTenantAdmin, IsTenantAdminForWrites
from core.serializers import validated_data
from settings_app import selectors, services
from settings_app.api.serializers import (
    AiModelsOutputSerializer,
    AiModelsQuerySerializer,
    AiSettingsInputSerializer,
    AiSettingsOutputSerializer,
    DashboardPresetInputSerializer,
    DashboardPresetListOutputSerializer,
    DashboardPresetOutputSerializer,
    MeOutputSerializer,
    RolePermissionsSerializer,
    UnitPreferencesInputSerializer,
    UnitPreferencesOutputSerializer,
)
from settings_app.throttling import PROBES_PER_MINUTE, AiProbeTenantThrottle

# 400/401/403 with DRF's error shapes come from core.openapi for every operation.


class MeView(GenericAPIView):
    """The caller's profile, tenant, what they are shown, and their units: a front end's start-up call."""

    permission_classes = [ApiAccess]
    serializer_class = MeOutputSerializer

    @extend_schema(
        summary="Who you are and what you are shown", responses={200: MeOutputSerializer}, operation_id="me_retrieve"
    )
    def get(self, request):
        return Response(self.get_serializer(selectors.me_get(user=caller_of(request).user)).data)


class RolePermissionsView(GenericAPIView):
    """Which settings tabs and nav pages operators and viewers are shown (admins see everything)."""

    permission_classes = [IsTenantAdminForWrites]
    serializer_class = RolePermissionsSerializer

    @extend_schema(summary="Role permissions", responses={200: RolePermissionsSerializer})
    def get(self, request):
        return Response(selectors.role_permissions_get(tenant_id=caller_of(request).tenant_id))

    @extend_schema(
        summary="Replace the role permissions",
        request=RolePermissionsSerializer,
        responses={200: RolePermissionsSerializer},
        description="Admin only. Replaces the mapping; both `operator` and `viewer` are required. "
        "Lists are stored de-duplicated, in the catalogue order.",
    )
    def put(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        by = caller_of(request)
        services.role_permissions_update(by=by, permissions=serializer.validated_data)
        return Response(selectors.role_permissions_get(tenant_id=by.tenant_id))


class AiSettingsView(GenericAPIView):
    """The tenant's AI provider: `platform` (Haltless-hosted) or `custom` (self-hosted)."""

    permission_classes = [IsTenantAdminForWrites]
    serializer_class = AiSettingsOutputSerializer

    @extend_schema(summary="AI provider settings", responses={200: AiSettingsOutputSerializer})
    def get(self, request):
        ai = selectors.ai_settings_get(tenant_id=caller_of(request).tenant_id)
        return Response(AiSettingsOutputSerializer(ai).data)

    @extend_schema(
        summary="Change the AI provider settings",
        request=AiSettingsInputSerializer,
        responses={200: AiSettingsOutputSerializer},
        description="Admin only. Provider `custom` needs an http(s) URL and a model (checked on the state "
        "after the patch). URLs follow the probe's address rules; host names are resolved when probed, not here.",
    )
    def patch(self, request):
        data = validated_data(AiSettingsInputSerializer, request.data)
        ai = services.ai_settings_update(by=caller_of(request), changes=data)
        return Response(AiSettingsOutputSerializer(ai).data)


class AiModelsView(GenericAPIView):
    """The models an admin can choose: asked of an Ollama or OpenAI-compatible server."""

    permission_classes = [IsTenantAdmin]
    serializer_class = AiModelsOutputSerializer
    throttle_classes = [AiProbeTenantThrottle]

    @extend_schema(
        summary="List the models of an AI server",
        parameters=[
            OpenApiParameter(
                "probe_url",
                str,
                description="Base URL of the server to ask (with or without `/v1`). Without it: the saved "
                "custom URL, or the platform's models for provider `platform`.",
            )
        ],
        responses={
            200: AiModelsOutputSerializer,
            400: OpenApiResponse(
                description=f'An address rule refused the host: `{{"detail": "{services.ADDRESS_REFUSED}"}}`; '
                'a malformed URL: `{"probe_url": ["..."]}`.'
            ),
            429: OpenApiResponse(description=f"More than {PROBES_PER_MINUTE} probes a minute in this tenant."),
            502: OpenApiResponse(
                description="Any failure of the probe (unreachable, too slow, not HTTP, TLS, an HTTP error, a "
                f'redirect, too large, not a model list): `{{"detail": "{services.PROBE_FAILED}"}}`, the same text '
                "whatever the reason (it is logged server-side)."
            ),
        },
        description="Admin only. Tries Ollama (`GET /api/tags`), then OpenAI-compatible (`GET /v1/models`). "
        "One 5-second deadline, no redirects, at most 1 MiB read. Every address the host resolves to is checked "
        "and only a checked address is connected to: cloud metadata, link-local, multicast, unspecified and "
        "reserved addresses are refused (400), loopback too unless AI_PROBE_ALLOW_LOOPBACK is set, and IPv6 "
        "addresses that embed a refused IPv4 address (NAT64 in any RFC 6052 layout, 6to4, Teredo, mapped); "
        "private LAN addresses are allowed. Each probe is audited (`settings.ai.probe`); at most "
        f"{PROBES_PER_MINUTE} a minute per tenant.",
    )
    def get(self, request):
        query = validated_data(AiModelsQuerySerializer, request.query_params)
        result = services.ai_models_probe(by=caller_of(request), probe_url=query.get("probe_url"))
        return Response(self.get_serializer({"provider_type": result.provider_type, "models": result.models}).data)


class DashboardPresetsView(GenericAPIView):
    """Each role's default dashboard layout (defaults until an admin saves one)."""

    permission_classes = [IsTenantAdminForWrites]
    serializer_class = DashboardPresetListOutputSerializer

    @extend_schema(summary="Dashboard presets of every role", responses={200: DashboardPresetListOutputSerializer})
    def get(self, request):
        return Response(selectors.dashboard_preset_list(tenant_id=caller_of(request).tenant_id))

    @extend_schema(
        summary="Save one role's dashboard preset",
        request=DashboardPresetInputSerializer,
        responses={200: DashboardPresetOutputSerializer},
        description="Admin only. Saves one role's preset: widgets need `id` (unique), `labelKey`, `visible` "
        "(a boolean) and `size` (full, half, third, quarter); statMetrics items need `metricId` (unique).",
    )
    def put(self, request):
        data = validated_data(DashboardPresetInputSerializer, request.data)
        preset = services.dashboard_preset_save(
            by=caller_of(request),
            role=data["role"],
            widgets=[dict(w) for w in data["widgets"]],
            stat_metrics=[dict(m) for m in data["statMetrics"]],
        )
        return Response({"role": preset.role, **preset.as_dict()})


class UnitPreferencesView(GenericAPIView):
    """The caller's own display units for temperature, pressure and vibration."""

    permission_classes = [ApiAccess]
    serializer_class = UnitPreferencesOutputSerializer

    @extend_schema(summary="Your display units", responses={200: UnitPreferencesOutputSerializer})
    def get(self, request):
        return Response(selectors.unit_preferences_get(user=caller_of(request).user))

    @extend_schema(
        summary="Change your display units",
        request=UnitPreferencesInputSerializer,
        responses={200: UnitPreferencesOutputSerializer},
    )
    def patch(self, request):
        data = validated_data(UnitPreferencesInputSerializer, request.data)
        by = caller_of(request)
        pref = services.unit_preferences_update(by=by, user=by.user, changes=dict(data))
        return Response(pref.as_dict())
