from django.urls import path

from apikeys.api import enrollment_views, public_views, views

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
    path(
        "settings/enrollment-tokens",
        enrollment_views.EnrollmentTokenListCreateView.as_view(),
        name="enrollment-tokens",
    ),
    path(
        "settings/enrollment-tokens/<uuid:token_id>",
        enrollment_views.EnrollmentTokenDetailView.as_view(),
        name="enrollment-token-detail",
    ),
    path("agent/enroll", enrollment_views.AgentEnrollView.as_view(), name="agent-enroll"),
    path("public/credentials/revoke", public_views.PublicCredentialRevokeView.as_view(), name="public-revoke"),
    path(
        "public/secret-scanning/github",
        public_views.GithubSecretScanningView.as_view(),
        name="public-secret-scanning-github",
    ),
]
