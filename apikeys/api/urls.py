from django.urls import path

from apikeys.api import views

urlpatterns = [
    path("settings/api-keys", views.ApiKeyListCreateView.as_view(), name="api-keys"),
    path("settings/api-keys/revoke", views.ApiKeyBulkRevokeView.as_view(), name="api-keys-bulk-revoke"),
    path("settings/api-keys/<uuid:key_id>", views.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path(
        "settings/api-keys/<uuid:key_id>/observed-ips",
        views.ApiKeyObservedIpsView.as_view(),
        name="api-key-observed-ips",
    ),
    path("settings/api-keys/<uuid:key_id>/rotate", views.ApiKeyRotateView.as_view(), name="api-key-rotate"),
    path("settings/api-key-policy", views.ApiKeyPolicyView.as_view(), name="api-key-policy"),
    path("agent/key/rotate", views.AgentKeyRotateView.as_view(), name="agent-key-rotate"),
    path("agent/whoami", views.AgentWhoAmIView.as_view(), name="agent-whoami"),
]
