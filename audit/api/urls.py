from django.urls import path

from audit.api import views

urlpatterns = [
    path("settings/audit-log", views.AuditEventListView.as_view(), name="audit-log"),
]
