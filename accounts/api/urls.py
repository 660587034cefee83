from django.urls import path

from . import views

user_collection = views.UserViewSet.as_view({"get": "list", "post": "create"})
user_detail = views.UserViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"})
user_me = views.UserViewSet.as_view({"get": "me"})
user_export = views.UserViewSet.as_view({"get": "export"})

booking_api = [
    path("auth/login", views.LoginView.as_view(), name="auth-login"),
    path("auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("auth/password-reset", views.PasswordResetView.as_view(), name="auth-password-reset"),
    path("auth/password-reset/confirm", views.PasswordResetConfirmView.as_view(), name="auth-password-reset-confirm"),
    path("user", user_collection, name="user-list"),
    path("user/me", user_me, name="user-me"),
    path("user/<int:pk>", user_detail, name="user-detail"),
    path("user/<int:pk>/export", user_export, name="user-export"),
]

core_api = [
    path("auth/register", views.CoreRegisterView.as_view(), name="core-register"),
    path("auth/login", views.CoreLoginView.as_view(), name="core-login"),
]
