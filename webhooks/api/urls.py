from django.urls import path

from webhooks.api import views

urlpatterns = [
    path("settings/webhook-deliveries", views.WebhookDeliveryListView.as_view(), name="webhook-deliveries"),
    path(
        "settings/webhook-deliveries/<uuid:delivery_id>/redeliver",
        views.WebhookRedeliverView.as_view(),
        name="webhook-delivery-redeliver",
    ),
]
