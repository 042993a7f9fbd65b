from django.urls import path

from users.api import views

urlpatterns = [
    path("auth/token", views.TokenObtainView.as_view(), name="auth-token"),
    path("auth/token/refresh", views.TokenRefreshView.as_view(), name="auth-token-refresh"),
    path("settings/profile", views.ProfileView.as_view(), name="profile"),
]
