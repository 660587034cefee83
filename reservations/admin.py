"""Bookings in the Django admin (ADMIN only). Records are read-only; the cancel/complete actions
go through reservations.services (seat counters, outbox notifications, status machine)."""

from django.contrib import admin

from bookings_project.admin import ReadOnlyAdmin, action_run_each

from .models import Booking, BookingStatus
from .services import booking_cancel, booking_set_status


@admin.register(Booking)
class BookingAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "item", "tier_name", "price_paid", "status", "booking_date", "start_time")
    list_filter = ("status", ("booking_date", admin.DateFieldListFilter),
                   ("start_time", admin.DateFieldListFilter))
    search_fields = ("=id", "user__username", "user__email", "item__name", "=request_key")
    date_hierarchy = "booking_date"
    list_select_related = ("user", "item")
    raw_id_fields = ("user", "item", "tier")
    # request_key: the client's Idempotency-Key (support: "which booking was that?")
    readonly_fields = ("tier_name", "booking_date", "updated_at", "request_key", "reminded_at")
    actions = ["cancel_bookings", "complete_bookings"]
    list_per_page = 50

    def _apply(self, request, queryset, done: str, change) -> None:
        action_run_each(self, request, queryset.order_by("pk").values_list("pk", flat=True),
                        noun="booking(s)", done=done, change=change, label=lambda pk: f"Booking #{pk}")

    @admin.action(description="Cancel selected bookings (notifies the customers)", permissions=["operate"])
    def cancel_bookings(self, request, queryset):
        actor = request.user
        self._apply(request, queryset, "cancelled", lambda pk: booking_cancel(actor=actor, booking_id=pk))

    @admin.action(description="Mark selected bookings completed", permissions=["operate"])
    def complete_bookings(self, request, queryset):
        actor = request.user
        self._apply(request, queryset, "completed", lambda pk: booking_set_status(
            actor=actor, booking_id=pk, status=BookingStatus.COMPLETED))
