"""Test data for bookings, made through reservations.services, and the seat counters they move."""

from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta

from freezegun import freeze_time

from catalog.models import BookableItem, PriceTier
from reservations.models import Booking, BookingStatus
from reservations.services import booking_create, booking_set_status


def book(user, item, *, booked_at: datetime | None = None, status: str | None = None, actor=None) -> Booking:
    """A CONFIRMED booking through the service; optionally moved to `status` (by `actor`, an
    ADMIN or the organizer) and re-dated to `booked_at`."""
    booking = booking_create(user=user, item_id=item.pk)
    if status is not None:
        with once_started(item) if status == BookingStatus.COMPLETED else nullcontext():
            booking = booking_set_status(actor=actor or item.organizer, booking_id=booking.pk, status=status)
    if booked_at is not None:
        Booking.objects.filter(pk=booking.pk).update(booking_date=booked_at)
        booking.refresh_from_db()
    return booking


@contextmanager
def once_started(item):
    """The clock a minute past the item's start: a booking can be completed from then on. (The
    clock stands still there, and a JWT issued before is long expired: build API clients inside.)"""
    with freeze_time(item.start_time + timedelta(minutes=1)):
        yield


def counters(item):
    item = BookableItem.objects.get(pk=item.pk)
    return item.sold, [t.sold for t in PriceTier.objects.filter(item=item).order_by("position")]
