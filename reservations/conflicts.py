"""Overlap rules, no I/O. Ranges are half-open `[start, end)`: back-to-back items do not clash."""

from datetime import datetime

from django.db.models import Q

from .models import BookingStatus

# Status machine (contract §5); CANCELLED and COMPLETED are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    BookingStatus.PENDING: frozenset({BookingStatus.CONFIRMED, BookingStatus.CANCELLED}),
    BookingStatus.CONFIRMED: frozenset({BookingStatus.COMPLETED, BookingStatus.CANCELLED}),
}


def overlap_q(start: datetime, end: datetime) -> Q:
    """Bookings whose [start_time, end_time) overlaps [start, end)."""
    return Q(start_time__lt=end, end_time__gt=start)


def transition_allowed(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())
