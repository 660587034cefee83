"""Items and bookings for reporting tests, made through the catalog/reservations services."""

from datetime import datetime, timedelta

from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.tests.factories import FUTURE, make_item
from reservations.models import Booking
from reservations.services import booking_create, booking_set_status


def future(days: float = 0, hours: float = 0) -> datetime:
    """An aware time `days` after the suite's far-future anchor (each day a separate slot)."""
    return timezone.make_aware(FUTURE) + timedelta(days=days, hours=hours)


def item_at(organizer, day: float, **fields):
    """An item starting `day` days after the anchor, so one user's bookings never overlap."""
    return make_item(organizer, start=future(day), **fields)


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


def local(*args) -> datetime:
    """An aware datetime in TIME_ZONE: local(2031, 3, 1, 23, 30)."""
    return timezone.make_aware(datetime(*args), timezone.get_current_timezone())


def queries_during(call) -> int:
    """Database queries run by `call()`. The query log is cleared first: it is a bounded deque,
    and once full its length no longer moves, so a count taken after heavy setup would read 0."""
    reset_queries()
    with CaptureQueriesContext(connection) as ctx:
        call()
    return len(ctx.captured_queries)
