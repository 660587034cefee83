from django.urls import path

from . import views

core_api = [
    path("logs", views.LogViewSet.as_view({"get": "list", "post": "create"}), name="logs"),
]
