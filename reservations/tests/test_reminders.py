"""Reminder emails BOOKING_REMINDER_HOURS before the item starts (reservations.reminders)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bookings_project.testing import race
from catalog.services import item_update
from catalog.tests.factories import make_item
from ops.dispatch import outbox_dispatch_until_empty
from ops.emails import local_time_span
from ops.models import OutboxEvent, OutboxStatus
from ops.outbox import EventType
from reservations.models import Booking, BookingStatus
from reservations.reminders import booking_reminders_enqueue
from reservations.services import booking_cancel, booking_create, booking_set_status
from reservations.tests.factories import book

ALL_DBS = ["default", "documents"]
WEEK_AGO = timedelta(days=7)


def reminders() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(event_type=EventType.BOOKING_REMINDER).order_by("created_at"))


def starting_in(organizer, delta, **extra):
    return make_item(organizer, start=timezone.now() + delta, **extra)


@pytest.mark.django_db(databases=ALL_DBS)
def test_a_reminder_is_queued_once_for_each_booking_due(organizer, make_user):
    """Due: CONFIRMED, the item starting within the 24 hours, booked before they began."""
    now = timezone.now()
    soon, later = starting_in(organizer, timedelta(hours=23)), starting_in(organizer, timedelta(hours=25))
    in_an_hour = starting_in(organizer, timedelta(hours=1))
    due = [book(make_user(), soon, booked_at=now - WEEK_AGO), book(make_user(), in_an_hour, booked_at=now - WEEK_AGO)]
    book(make_user(), later, booked_at=now - WEEK_AGO)  # not yet
    book(make_user(), soon, booked_at=now - timedelta(minutes=30))  # booked inside the window: just confirmed
    book(make_user(), soon, booked_at=now - WEEK_AGO, status=BookingStatus.CANCELLED)
    pending = book(make_user(), soon, booked_at=now - WEEK_AGO)
    Booking.objects.filter(pk=pending.pk).update(status=BookingStatus.PENDING)

    assert booking_reminders_enqueue(now=now) == 2
    assert booking_reminders_enqueue(now=now) == 0  # each booking once
    assert booking_reminders_enqueue(now=now + timedelta(minutes=5)) == 0

    queued = reminders()
    assert sorted(e.payload["bookingId"] for e in queued) == sorted(b.pk for b in due)
    assert {e.recipient_email for e in queued} == {b.user.email for b in due}
    assert set(Booking.objects.filter(reminded_at__isnull=False).values_list("pk", flat=True)) == {b.pk for b in due}



@pytest.mark.django_db(databases=ALL_DBS)
def test_a_booking_confirmed_inside_the_window_has_just_had_its_confirmation(organizer, make_user, smtp_server):
    """A PENDING booking made long ago that its organizer confirms 3 hours before the start gets
    its confirmation then, as one booked then would: no reminder minutes after it. Confirmed
    before the window opens, its reminder comes as usual."""
    now = timezone.now()
    inside, before = starting_in(organizer, timedelta(hours=3)), starting_in(organizer, timedelta(hours=30))
    pending = [book(make_user(), item, booked_at=now - WEEK_AGO) for item in (inside, before)]
    Booking.objects.filter(pk__in=[b.pk for b in pending]).update(status=BookingStatus.PENDING)
    for booking in pending:
        booking_set_status(actor=organizer, booking_id=booking.pk, status=BookingStatus.CONFIRMED)

    assert booking_reminders_enqueue() == 0
    assert booking_reminders_enqueue(now=now + timedelta(hours=7)) == 1
    assert [e.payload["bookingId"] for e in reminders()] == [pending[1].pk]
    outbox_dispatch_until_empty()
    sent = [(m["message"]["X-Bookings-Event"], m["message"]["To"]) for m in smtp_server.messages]
    assert sent.count(("BOOKING_CONFIRMED", pending[0].user.email)) == 2  # booked, then confirmed
    assert ("BOOKING_REMINDER", pending[0].user.email) not in sent

@pytest.mark.django_db(databases=ALL_DBS)
def test_the_window_follows_the_setting_and_zero_turns_reminders_off(organizer, make_user, settings):
    booking = book(make_user(), starting_in(organizer, timedelta(hours=30)), booked_at=timezone.now() - WEEK_AGO)
    settings.BOOKING_REMINDER_HOURS = 0
    assert booking_reminders_enqueue() == 0
    settings.BOOKING_REMINDER_HOURS = 24
    assert booking_reminders_enqueue() == 0
    settings.BOOKING_REMINDER_HOURS = 48
    assert booking_reminders_enqueue() == 1 and reminders()[0].payload["bookingId"] == booking.pk


@pytest.mark.django_db(databases=ALL_DBS)
def test_the_reminder_email_carries_the_booking(organizer, make_user, smtp_server):
    customer = make_user(username="carol", email="carol@example.com")
    item = starting_in(organizer, timedelta(hours=20), name="Tech Workshop", location="Room 4", capacity=2,
                       tiers=[("Early Bird", "49.99", 2)])
    booking = book(customer, item, booked_at=timezone.now() - WEEK_AGO)
    outbox_dispatch_until_empty()  # (its confirmation)

    booking_reminders_enqueue()
    outbox_dispatch_until_empty()

    [message] = [m["message"] for m in smtp_server.messages if m["message"]["X-Bookings-Event"] == "BOOKING_REMINDER"]
    assert message["To"] == "carol@example.com"
    assert message["Subject"] == "Reminder: Tech Workshop starts soon"
    assert message["Message-ID"].startswith(f"<{reminders()[0].pk}@")
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "Hello carol" in text and "Room 4" in text and "Early Bird" in text and "49.99" in text
    assert f"#{booking.pk}" in text and local_time_span(item.start_time.isoformat(), item.end_time.isoformat()) in text
    assert "Tech Workshop" in message.get_body(preferencelist=("html",)).get_content()
    assert not list(message.iter_attachments())  # the confirmation carried the calendar entry


@pytest.mark.django_db(databases=ALL_DBS)
def test_nothing_goes_out_for_a_booking_cancelled_since(organizer, make_user, smtp_server):
    customer = make_user()
    booking = book(customer, starting_in(organizer, timedelta(hours=3)), booked_at=timezone.now() - WEEK_AGO)
    booking_reminders_enqueue()
    booking_cancel(actor=customer, booking_id=booking.pk)

    outbox_dispatch_until_empty()

    events = [m["message"]["X-Bookings-Event"] for m in smtp_server.messages]
    assert "BOOKING_REMINDER" not in events and "BOOKING_CANCELLED" in events
    assert reminders()[0].status == OutboxStatus.SENT  # done with: nothing to remind of


@pytest.mark.django_db(databases=ALL_DBS)
def test_a_moved_item_drops_the_old_reminder_and_its_new_times_get_their_own(organizer, make_user, smtp_server):
    item = starting_in(organizer, timedelta(hours=5))
    booking = book(make_user(), item, booked_at=timezone.now() - WEEK_AGO)
    assert booking_reminders_enqueue() == 1
    new_start = timezone.now() + timedelta(days=3)

    item_update(actor=organizer, item_id=item.pk, start_time=new_start, end_time=new_start + timedelta(hours=2))
    outbox_dispatch_until_empty()

    sent = [m["message"]["X-Bookings-Event"] for m in smtp_server.messages]
    assert "BOOKING_REMINDER" not in sent  # the move notice told the new times
    assert Booking.objects.get(pk=booking.pk).reminded_at is None
    assert booking_reminders_enqueue() == 0
    assert booking_reminders_enqueue(now=new_start - timedelta(hours=20)) == 1
    assert reminders()[-1].payload == {"bookingId": booking.pk, "revision": 1}


@pytest.mark.django_db(databases=ALL_DBS)
def test_nothing_goes_out_once_the_item_has_started(organizer, make_user, smtp_server):
    item = starting_in(organizer, timedelta(hours=2))
    book(make_user(), item, booked_at=timezone.now() - WEEK_AGO)
    booking_reminders_enqueue()
    from freezegun import freeze_time

    with freeze_time(item.start_time + timedelta(minutes=1)):  # the worker was down until then
        outbox_dispatch_until_empty()

    assert [m for m in smtp_server.messages if m["message"]["X-Bookings-Event"] == "BOOKING_REMINDER"] == []


@pytest.mark.django_db(databases=ALL_DBS)
def test_the_sweep_queues_in_bounded_transactions(organizer, make_user, monkeypatch):
    from reservations import reminders as module

    monkeypatch.setattr(module, "BATCH", 3)
    item = starting_in(organizer, timedelta(hours=6), capacity=10)
    for _ in range(7):
        book(make_user(), item, booked_at=timezone.now() - WEEK_AGO)

    assert booking_reminders_enqueue() == 7
    assert len({e.payload["bookingId"] for e in reminders()}) == 7



@pytest.mark.django_db(databases=ALL_DBS)
def test_the_bookings_starting_soonest_are_queued_first(organizer, make_user, monkeypatch):
    """The outbox sends in the order queued: in a sweep with many due (the first after
    deploying, an item with thousands of bookers, beat back after a while) the reminders of the
    items starting soonest go first, not behind every older booking's (by then theirs could
    have started, and been dropped)."""
    from reservations import reminders as module

    monkeypatch.setattr(module, "BATCH", 2)
    later, sooner = starting_in(organizer, timedelta(hours=20)), starting_in(organizer, timedelta(hours=1))
    booked = [book(make_user(), item, booked_at=timezone.now() - WEEK_AGO) for item in (later, later, sooner, sooner)]

    assert booking_reminders_enqueue() == 4
    queued = [e.payload["bookingId"] for e in reminders()]
    assert set(queued[:2]) == {b.pk for b in booked[2:]} and set(queued[2:]) == {b.pk for b in booked[:2]}

def test_beat_sweeps_for_reminders(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["booking-reminders"]  # (its task's registration: test_deployment)
    assert entry["task"] == "reservations.booking_reminders_task"
    assert entry["schedule"] <= 600 and 0 < entry["options"]["expires"] <= entry["schedule"]


@pytest.mark.postgres
@pytest.mark.django_db(databases=ALL_DBS, transaction=True)
def test_sweeps_at_once_remind_each_booking_once(organizer, make_user, monkeypatch):
    """Two beats (or a beat and an operator) sweeping together: SKIP LOCKED and the mark in the
    same transaction leave no booking reminded twice, none left out."""
    from reservations import reminders as module

    monkeypatch.setattr(module, "BATCH", 5)
    items = [starting_in(organizer, timedelta(hours=h), capacity=20) for h in (2, 3)]
    for item in items:
        for _ in range(15):
            booking = booking_create(user=make_user(), item_id=item.pk)
            Booking.objects.filter(pk=booking.pk).update(booking_date=timezone.now() - WEEK_AGO)

    results = race([booking_reminders_enqueue] * 4)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(results) == 30
    ids = [e.payload["bookingId"] for e in reminders()]
    assert len(ids) == 30 and len(set(ids)) == 30


@pytest.mark.django_db(databases=ALL_DBS)
def test_an_account_turns_reminders_off_and_on_through_the_api(organizer, make_user, client_for, smtp_server):
    customer = make_user()
    client = client_for(customer)
    first = book(customer, starting_in(organizer, timedelta(hours=5)), booked_at=timezone.now() - WEEK_AGO)

    response = client.put(f"/api/v1/user/{customer.pk}", {"bookingReminders": False}, format="json")
    assert response.status_code == 200 and response.json()["bookingReminders"] is False
    assert booking_reminders_enqueue() == 0
    assert client.get("/api/v1/user/me").json()["bookingReminders"] is False

    client.put(f"/api/v1/user/{customer.pk}", {"bookingReminders": True}, format="json")
    assert booking_reminders_enqueue() == 1 and reminders()[0].payload["bookingId"] == first.pk


@pytest.mark.django_db(databases=ALL_DBS)
def test_a_reminder_queued_before_the_account_turned_them_off_is_not_sent(organizer, make_user, smtp_server):
    from accounts.services import user_update

    customer = make_user()
    book(customer, starting_in(organizer, timedelta(hours=5)), booked_at=timezone.now() - WEEK_AGO)
    assert booking_reminders_enqueue() == 1
    user_update(actor=customer, user=customer, booking_reminders=False)

    outbox_dispatch_until_empty()

    assert [m for m in smtp_server.messages if m["message"]["X-Bookings-Event"] == "BOOKING_REMINDER"] == []
