"""Root URLs. Every app's API lives under /api/v1; see core.middleware for slashes."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from core.views import ApiDocsView
from haltless import views as site_views

# Django tries patterns in order, so the hot paths come first: telemetry's (ingest, heartbeats,
# readings) before the settings apps', and the API before the site. No two apps share a path.
api_v1 = [
    path("", include("telemetry.api.urls")),
    path("", include("users.api.urls")),
    path("", include("apikeys.api.urls")),
    path("", include("settings_app.api.urls")),
    path("", include("retention.api.urls")),
    path("", include("audit.api.urls")),
    path("", include("webhooks.api.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("", site_views.landing, name="landing"),
    path("healthz", site_views.healthz, name="healthz"),
    path("readyz", site_views.readyz, name="readyz"),
    path("metrics", site_views.prometheus_metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="schema"), name="swagger-ui"),
]

handler400 = "core.views.bad_request"
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
