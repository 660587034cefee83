"""Items and dates for reporting tests (bookings: reservations/tests/factories.py)."""

from datetime import datetime, timedelta

from django.utils import timezone

from catalog.tests.factories import FUTURE, make_item


def future(days: float = 0, hours: float = 0) -> datetime:
    """An aware time `days` after the suite's far-future anchor (each day a separate slot)."""
    return timezone.make_aware(FUTURE) + timedelta(days=days, hours=hours)


def item_at(organizer, day: float, **fields):
    """An item starting `day` days after the anchor, so one user's bookings never overlap."""
    return make_item(organizer, start=future(day), **fields)


def local(*args) -> datetime:
    """An aware datetime in TIME_ZONE: local(2031, 3, 1, 23, 30)."""
    return timezone.make_aware(datetime(*args), timezone.get_current_timezone())
