from django.urls import path

from . import views

urlpatterns = [
    path("bookings/items/<int:item_id>", views.ItemBookingsView.as_view(), name="item-bookings"),
    path("bookings/me", views.MyBookingsView.as_view(), name="my-bookings"),
    path("bookings/<int:booking_id>/cancel", views.BookingCancelView.as_view(), name="booking-cancel"),
    path("bookings/<int:booking_id>/status", views.BookingStatusView.as_view(), name="booking-status"),
    path("users/me/conflicts", views.MyConflictsView.as_view(), name="my-conflicts"),
]
