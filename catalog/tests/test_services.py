"""catalog.services called from Python (management commands, the shell, other services): aware
datetimes in a zone, not the UTC the API hands them, mean the same instants; the contract's
item rules hold without the API's serializer in front; moves, deletions and the organizer limit."""

from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from bookings_project.errors import ValidationFailed
from catalog.exceptions import ItemLimitReached
from catalog.models import BookableItem
from catalog.services import item_create, item_delete, item_update
from catalog.tests.factories import make_item
from ops.dispatch import outbox_dispatch_until_empty
from ops.models import Document, OutboxEvent
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


@pytest.mark.parametrize(("fields", "error_field"), [
    ({"capacity": 0}, "capacity"),
    ({"capacity": 2, "price_tiers": [{"name": "A", "price": Decimal("-1.00"), "max_capacity": 2}]}, "priceTiers"),
    ({"capacity": 2, "price_tiers": [{"name": "A", "price": Decimal("1.00"), "max_capacity": 1},
                                     {"name": "A", "price": Decimal("2.00"), "max_capacity": 1}]}, "priceTiers"),
])
def test_the_service_itself_refuses_what_the_contract_forbids(organizer, fields, error_field):
    """A management command or the shell gets the same field errors as the API, not the
    database's IntegrityError (or a row the API would have refused)."""
    start = datetime(2031, 9, 15, 10, tzinfo=dt_timezone.utc)
    with pytest.raises(ValidationFailed) as error:
        item_create(organizer=organizer, name="Talk", start_time=start, end_time=start + timedelta(hours=1), **fields)
    assert error.value.fields.keys() == {error_field}
    assert not BookableItem.objects.exists()


def test_moving_only_the_end_moves_the_bookings_and_tells_their_bookers(organizer, customer):
    item = make_item(organizer, hours=2)
    booking = book(customer, item)
    later_end = item.end_time + timedelta(hours=1)

    item_update(actor=organizer, item_id=item.pk, end_time=later_end)

    moved = Booking.objects.get(pk=booking.pk)
    assert (moved.start_time, moved.end_time, moved.revision) == (item.start_time, later_end, 1)
    [notice] = OutboxEvent.objects.filter(event_type="BOOKING_CONFIRMED", payload__rescheduled=True)
    assert notice.payload["bookingId"] == booking.pk


@pytest.mark.django_db(databases=["default", "documents"])
def test_a_deleted_items_document_is_removed(organizer):
    """The item left the API, so its customer-facing document goes too (DECISIONS: documents)."""
    item = make_item(organizer)
    outbox_dispatch_until_empty()
    documents = Document.objects.using("documents").filter(entity_type="item", entity_id=str(item.pk))
    assert documents.exists()

    item_delete(actor=organizer, item_id=item.pk)
    outbox_dispatch_until_empty()

    assert not documents.exists()


def test_an_item_ending_this_instant_has_ended_so_moving_it_back_takes_a_place(organizer, settings):
    """The limit counts items with end_time > now; one whose end is now holds no place, and
    moving it into the future is a revival like any ended item's."""
    settings.MAX_UPCOMING_ITEMS_PER_ORGANIZER = 1
    upcoming = make_item(organizer, name="Upcoming")  # the one place
    end = datetime(2026, 1, 10, 12, tzinfo=dt_timezone.utc)
    ended = make_item(organizer, name="Ended", start=end - timedelta(hours=2))
    with freeze_time(end), pytest.raises(ItemLimitReached):
        item_update(actor=organizer, item_id=ended.pk, start_time=upcoming.end_time,
                    end_time=upcoming.end_time + timedelta(hours=2))
    assert BookableItem.objects.get(pk=ended.pk).end_time == end
