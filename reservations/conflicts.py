"""Booking rules, no I/O: the status machine. (Overlap, half-open `[start, end)`:
bookings_project.datetimes.overlapping.)"""

from .models import BookingStatus

# Status machine (contract §5); CANCELLED and COMPLETED are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    BookingStatus.PENDING: frozenset({BookingStatus.CONFIRMED, BookingStatus.CANCELLED}),
    BookingStatus.CONFIRMED: frozenset({BookingStatus.COMPLETED, BookingStatus.CANCELLED}),
}


def transition_allowed(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())
