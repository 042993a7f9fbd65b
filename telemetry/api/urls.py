from django.urls import path

from telemetry.api import views

urlpatterns = [
    path("ingest", views.IngestView.as_view(), name="ingest"),
    path("agent/heartbeat", views.HeartbeatView.as_view(), name="agent-heartbeat"),
    path("machines", views.MachineListView.as_view(), name="machine-list"),
    path("machines/<uuid:pk>", views.MachineDetailView.as_view(), name="machine-detail"),
    path("machines/<uuid:pk>/sensors", views.MachineSensorListView.as_view(), name="machine-sensor-list"),
    path("machines/<uuid:pk>/sensors/<str:key>", views.MachineSensorDetailView.as_view(), name="machine-sensor-detail"),
    path("sensor-data/readings", views.ReadingListView.as_view(), name="sensor-readings"),
    path("sensor-data/latest", views.LatestReadingsView.as_view(), name="sensor-latest"),
    path("sensor-data/aggregate", views.AggregateView.as_view(), name="sensor-aggregate"),
]
