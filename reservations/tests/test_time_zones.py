""""Already started", "upcoming" and the cancellation rule are instants, whatever the local
clock shows: around a DST change (Berlin's repeated hour, where a later wall-clock time can be
an earlier instant) and across the date line (Kiritimati, UTC+14), with the clock frozen at the
edge. The API writes the repeated hour's second pass with its offset; these pin the rules."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone
from freezegun import freeze_time

from catalog.tests.factories import make_item
from reporting.selectors import recommended_items
from reservations.services import booking_create

pytestmark = pytest.mark.django_db
UTC = dt_timezone.utc
# Berlin, 2031-10-26: clocks go back 03:00 → 02:00, so 02:00–03:00 local happens twice.
FIRST_0230 = datetime(2031, 10, 26, 0, 30, tzinfo=UTC)   # 02:30+02:00
SECOND_0200 = datetime(2031, 10, 26, 1, 0, tzinfo=UTC)   # 02:00+01:00, after FIRST_0230
FIRST_0245 = datetime(2031, 10, 26, 0, 45, tzinfo=UTC)   # 02:45+02:00
SECOND_0230 = datetime(2031, 10, 26, 1, 30, tzinfo=UTC)  # 02:30+01:00, after FIRST_0245


@pytest.fixture
def berlin(settings):
    settings.TIME_ZONE = "Europe/Berlin"


def book_via_api(client_for, user, item):
    return client_for(user).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json")


def test_an_item_in_the_first_pass_has_started_during_the_second_although_the_clock_shows_earlier(
        berlin, client_for, organizer, customer, make_user):
    item = make_item(organizer, start=FIRST_0230)
    early = make_user()
    with freeze_time(FIRST_0230 - timedelta(hours=1)):
        booking = booking_create(user=early, item_id=item.pk)
    with freeze_time(SECOND_0200):  # the wall clock reads 02:00, the item started at 02:30 an instant ago
        refused = book_via_api(client_for, customer, item)
        assert refused.status_code == 400 and "already started" in refused.json()["message"].lower()
        assert client_for(early).put(f"/api/v1/bookings/{booking.pk}/cancel").status_code == 409
        assert item.pk not in [i.pk for i in recommended_items(user=customer, limit=5)]


def test_an_item_in_the_second_pass_is_upcoming_during_the_first_although_the_clock_shows_later(
        berlin, client_for, organizer, customer):
    item = make_item(organizer, start=SECOND_0230)
    with freeze_time(FIRST_0245):  # the wall clock reads 02:45, the item starts at 02:30 an hour from now
        assert [i.pk for i in recommended_items(user=customer, limit=5)] == [item.pk]
        created = book_via_api(client_for, customer, item)
        assert created.status_code == 201, created.content
        assert client_for(customer).get("/api/v1/bookings/me").json()[0]["id"] == created.json()["id"]
        assert client_for(customer).put(f"/api/v1/bookings/{created.json()['id']}/cancel").status_code == 200


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Chatham", "America/St_Johns"])
def test_an_item_at_local_midnight_is_upcoming_until_that_instant(settings, client_for, organizer, customer,
                                                                   make_user, zone):
    """At 23:59:59 local the day before it is upcoming (bookable, recommended, cancellable by its
    owner); from midnight local it has started — however far that is from midnight UTC."""
    settings.TIME_ZONE = zone
    start = timezone.make_aware(datetime(2031, 9, 16))
    item = make_item(organizer, start=start)
    with freeze_time(start - timedelta(seconds=1)):
        assert [i.pk for i in recommended_items(user=customer, limit=5)] == [item.pk]
        created = book_via_api(client_for, customer, item)
        assert created.status_code == 201, created.content
    with freeze_time(start):
        assert recommended_items(user=customer, limit=5) == []
        assert client_for(customer).put(f"/api/v1/bookings/{created.json()['id']}/cancel").status_code == 409
        late = book_via_api(client_for, make_user(), item)
        assert late.status_code == 400 and "already started" in late.json()["message"].lower()
