"""catalog.services called from Python (management commands, the shell, other services) with
aware datetimes in a zone, not the UTC the API hands them: they mean the same instants."""

from datetime import datetime, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest

from bookings_project.errors import ValidationFailed
from catalog.models import BookableItem
from catalog.services import item_create, item_update
from catalog.tests.factories import make_item
from ops.models import OutboxEvent
from reservations.models import Booking
from reservations.tests.factories import book

pytestmark = pytest.mark.django_db
BERLIN = ZoneInfo("Europe/Berlin")
# 2031-10-26: clocks go back 03:00 → 02:00 in Berlin, so 02:00–03:00 happens twice.
FIRST_0230 = datetime(2031, 10, 26, 2, 30, tzinfo=BERLIN)           # fold 0: 00:30 UTC
SECOND_0230 = datetime(2031, 10, 26, 2, 30, fold=1, tzinfo=BERLIN)  # fold 1: 01:30 UTC


def test_an_end_before_the_start_is_a_field_error_even_when_the_wall_clock_says_after(organizer):
    """Python compares two datetimes of one zone by wall clock: 02:45 (first pass) looked later
    than 02:30 (second pass), the check passed and the database's CHECK failed (IntegrityError)."""
    end = datetime(2031, 10, 26, 2, 45, tzinfo=BERLIN)  # 00:45 UTC, 45 minutes before the start
    with pytest.raises(ValidationFailed) as error:
        item_create(organizer=organizer, name="Night run", capacity=1, start_time=SECOND_0230, end_time=end)
    assert error.value.fields == {"endTime": ["Must be after startTime"]}
    assert not BookableItem.objects.exists()


def test_the_same_instant_in_a_repeated_hour_is_not_a_move(organizer, customer):
    """Python never finds a time a zone repeats equal to the same instant in another zone
    (PEP 495): an update naming the item's own start in Berlin time counted as a move, bumped
    each booking's revision and emailed every booker "your booking was moved"."""
    item = make_item(organizer, start=datetime(2031, 10, 26, 0, 30, tzinfo=dt_timezone.utc))
    booking = book(customer, item)
    emails = OutboxEvent.objects.filter(event_type="BOOKING_CONFIRMED").count()

    item_update(actor=organizer, item_id=item.pk, start_time=FIRST_0230, name="Renamed")

    assert OutboxEvent.objects.filter(event_type="BOOKING_CONFIRMED").count() == emails
    assert Booking.objects.get(pk=booking.pk).revision == 0
    assert BookableItem.objects.get(pk=item.pk).start_time == datetime(2031, 10, 26, 0, 30, tzinfo=dt_timezone.utc)


def test_a_real_move_into_the_second_pass_is_one(organizer, customer):
    item = make_item(organizer, start=datetime(2031, 10, 26, 0, 30, tzinfo=dt_timezone.utc), hours=3)
    booking = book(customer, item)

    item_update(actor=organizer, item_id=item.pk, start_time=SECOND_0230)

    moved = Booking.objects.get(pk=booking.pk)
    assert (moved.start_time, moved.revision) == (datetime(2031, 10, 26, 1, 30, tzinfo=dt_timezone.utc), 1)
