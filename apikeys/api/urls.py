from django.urls import path

from apikeys.api import views

urlpatterns = [
    path("settings/api-keys", views.ApiKeyListCreateView.as_view(), name="api-keys"),
    path("settings/api-keys/<uuid:key_id>", views.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path(
        "settings/api-keys/<uuid:key_id>/observed-ips",
        views.ApiKeyObservedIpsView.as_view(),
        name="api-key-observed-ips",
    ),
]
