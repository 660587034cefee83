from django.urls import path

from . import views

core_api = [
    path("logs", views.LogViewSet.as_view({"get": "search", "post": "create"}), name="logs"),
    path("notifications", views.NotificationView.as_view({"post": "create"}), name="notifications"),
    path("jobs", views.JobViewSet.as_view({"get": "search", "post": "create"}), name="jobs"),
    path("jobs/<str:pk>", views.JobViewSet.as_view({"get": "retrieve"}), name="job-detail"),
    path("jobs/<str:pk>/execute", views.JobViewSet.as_view({"put": "execute"}), name="job-execute"),
    path("reconciliation", views.ReconciliationViewSet.as_view({"post": "create"}), name="reconciliation"),
    path("reconciliation/events", views.ReconciliationViewSet.as_view({"post": "event"}),
         name="reconciliation-events"),
    path("reconciliation/jobs", views.ReconciliationViewSet.as_view({"get": "jobs"}), name="reconciliation-jobs"),
]
