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
]
