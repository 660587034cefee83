from django.urls import path

from . import views

urlpatterns = [
    path("reports/revenue", views.RevenueReportView.as_view(), name="revenue-report"),
    path("recommendations/users/me", views.MyRecommendationsView.as_view(), name="my-recommendations"),
]
