"""Test data for bookings, made through reservations.services."""

from datetime import datetime

from reservations.models import Booking
from reservations.services import booking_create, booking_set_status


def book(user, item, *, booked_at: datetime | None = None, status: str | None = None, actor=None) -> Booking:
    """A CONFIRMED booking through the service; optionally moved to `status` (by `actor`, an
    ADMIN or the organizer) and re-dated to `booked_at`."""
    booking = booking_create(user=user, item_id=item.pk)
    if status is not None:
        booking = booking_set_status(actor=actor or item.organizer, booking_id=booking.pk, status=status)
    if booked_at is not None:
        Booking.objects.filter(pk=booking.pk).update(booking_date=booked_at)
        booking.refresh_from_db()
    return booking
