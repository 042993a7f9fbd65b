from django.urls import path

from users.api import views

urlpatterns = [
    path("auth/token", views.TokenObtainView.as_view(), name="auth-token"),
    path("auth/token/refresh", views.TokenRefreshView.as_view(), name="auth-token-refresh"),
    path("settings/profile", views.ProfileView.as_view(), name="profile"),
    path("settings/change-password", views.PasswordChangeView.as_view(), name="change-password"),
    path("users", views.UserListCreateView.as_view(), name="user-list"),
    path("users/<uuid:user_id>", views.UserDetailView.as_view(), name="user-detail"),
    path("users/<uuid:user_id>/role", views.UserRoleView.as_view(), name="user-role"),
    path("users/<uuid:user_id>/reactivate", views.UserReactivateView.as_view(), name="user-reactivate"),
]
