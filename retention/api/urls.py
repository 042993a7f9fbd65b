from django.urls import path

from retention.api import views

urlpatterns = [
    path("settings/admin/retention/run", views.RetentionRunRequestView.as_view(), name="retention-run"),
    path("settings/admin/retention/runs", views.RetentionRunListView.as_view(), name="retention-run-list"),
    path(
        "settings/admin/retention/runs/<uuid:run_id>",
        views.RetentionRunDetailView.as_view(),
        name="retention-run-detail",
    ),
    path("settings/retention-policy", views.RetentionPolicyView.as_view(), name="retention-policy"),
    path("settings/admin/retention/preview", views.RetentionPreviewView.as_view(), name="retention-preview"),
    path("settings/admin/retention/holds", views.RetentionHoldListView.as_view(), name="retention-hold-list"),
    path(
        "settings/admin/retention/holds/<uuid:hold_id>",
        views.RetentionHoldDetailView.as_view(),
        name="retention-hold-detail",
    ),
]
