"""Booking emails as mail and calendar clients read them: iTIP invitations (RFC 5545/5546) with
times in UTC, one UID per booking and a SEQUENCE that orders its revisions, headers that show
exactly what was written, and item moves announced to every booker."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from catalog.services import item_update
from catalog.tests.factories import make_item
from ops.dispatch import outbox_dispatch_until_empty
from ops.models import OutboxEvent

pytestmark = pytest.mark.django_db(databases=["default", "documents"])

BERLIN = ZoneInfo("Europe/Berlin")


def mails(smtp_server, event_type=None):
    return [m["message"] for m in smtp_server.messages
            if event_type is None or m["message"]["X-Bookings-Event"] == event_type]


def vevent(message):
    [part] = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    raw = part.get_payload(decode=True)
    calendar = Calendar.from_ical(raw)
    [event] = calendar.walk("VEVENT")
    return calendar, event, part


def subject(message) -> str:
    return str(message["Subject"])  # as a mail client shows it (the test server parses with policy.default)


@pytest.fixture
def berlin(settings):
    settings.TIME_ZONE = "Europe/Berlin"


def test_invitation_times_are_utc_across_a_dst_change_with_organizer_attendee_and_stamp(
        berlin, client_for, make_user, smtp_server):
    organizer, customer = make_user(roles=["EVENT_ORGANIZER"]), make_user(email="carol@example.com")
    # 01:30 summer time to 04:30 winter time: four hours, the clocks go back in between.
    start = datetime(2031, 10, 26, 1, 30, tzinfo=BERLIN).astimezone(UTC)  # UTC: +4 h is four real hours
    item = make_item(organizer, name="Night walk", start=start, hours=4, capacity=5, tiers=[("A", "10.00", 5)])
    booking = client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").json()
    outbox_dispatch_until_empty()

    [message] = mails(smtp_server, "BOOKING_CONFIRMED")
    calendar, event, part = vevent(message)
    assert str(calendar["method"]) == "REQUEST"
    assert event.decoded("dtstart") == datetime(2031, 10, 25, 23, 30, tzinfo=UTC)
    assert event.decoded("dtend") - event.decoded("dtstart") == timedelta(hours=4)
    assert b"DTSTART:20311025T233000Z" in part.get_payload(decode=True)
    assert b"VTIMEZONE" not in part.get_payload(decode=True) and b"TZID" not in part.get_payload(decode=True)
    assert str(event["uid"]).startswith(f"booking-{booking['id']}@")
    assert str(event["organizer"]).startswith("mailto:") and str(event["attendee"]) == "mailto:carol@example.com"
    assert event["attendee"].params["PARTSTAT"] == "ACCEPTED"
    confirmed = OutboxEvent.objects.get(event_type="BOOKING_CONFIRMED")
    assert abs(event.decoded("dtstamp") - confirmed.created_at) < timedelta(seconds=1)
    assert event["sequence"] == 0
    # One charset parameter (Django adds it), and the METHOD of the calendar.
    content_type = part["Content-Type"]
    assert content_type.count("charset") == 1 and 'method="REQUEST"' in content_type


def test_a_new_place_is_news_to_every_booker_as_new_times_are(client_for, make_user, smtp_server):
    """Only new times told the bookers: a venue moved to another building left every attendee's
    calendar (and the confirmation they kept) at the old address. A new place now sends the
    updated invitation with what changed; other edits (a description) send nothing."""
    organizer = make_user(roles=["EVENT_ORGANIZER"])
    customer = make_user(email="c@example.com")
    item = make_item(organizer, name="Workshop", capacity=5, location="Hall A")
    client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json")
    outbox_dispatch_until_empty()

    item_update(actor=organizer, item_id=item.pk, description="Bring a laptop.")
    item_update(actor=organizer, item_id=item.pk, location="Hall B, 2nd floor")
    later = item.start_time + timedelta(days=1)
    item_update(actor=organizer, item_id=item.pk, location="Hall C", start_time=later, end_time=later + timedelta(hours=2))
    outbox_dispatch_until_empty()

    _, place, both = mails(smtp_server, "BOOKING_CONFIRMED")
    texts = [m.get_body(preferencelist=("plain",)).get_content() for m in (place, both)]
    assert "moved your booking to a new place." in texts[0] and "Where:   Hall B, 2nd floor" in texts[0]
    assert "moved your booking to new times and a new place." in texts[1]
    assert "Your booking has a new place" in place.get_body(preferencelist=("html",)).get_content()
    assert [str(vevent(m)[1]["location"]) for m in (place, both)] == ["Hall B, 2nd floor", "Hall C"]
    assert [vevent(m)[1]["sequence"] for m in (place, both)] == [1, 2]
    assert vevent(place)[1].decoded("dtstart") == item.start_time


def test_a_moved_item_sends_each_booker_an_updated_invitation_and_a_later_cancel_outranks_it(
        client_for, make_user, smtp_server, monkeypatch):
    organizer = make_user(roles=["EVENT_ORGANIZER"])
    customers = [make_user(email=f"c{n}@example.com") for n in range(2)]
    item = make_item(organizer, name="Workshop", capacity=5)
    ids = [client_for(c).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").json()["id"] for c in customers]
    outbox_dispatch_until_empty()

    later = item.start_time + timedelta(days=1)
    item_update(actor=organizer, item_id=item.pk, start_time=later, end_time=later + timedelta(hours=3))
    outbox_dispatch_until_empty()
    client_for(customers[0]).put(f"/api/v1/bookings/{ids[0]}/cancel")
    outbox_dispatch_until_empty()

    confirmed = mails(smtp_server, "BOOKING_CONFIRMED")
    first, moved = confirmed[:2], confirmed[2:]
    assert sorted(m["To"] for m in moved) == ["c0@example.com", "c1@example.com"]
    for message in moved:
        assert subject(message) == "Booking moved: Workshop"
        assert "moved your booking to new times" in message.get_body(preferencelist=("plain",)).get_content()
        _, event, _ = vevent(message)
        assert event.decoded("dtstart") == later and event.decoded("dtend") == later + timedelta(hours=3)
        assert event["sequence"] == 1  # the first revision after the confirmation (0)
    uid = lambda message: str(vevent(message)[1]["uid"])  # noqa: E731
    assert {uid(m) for m in first} == {uid(m) for m in moved}
    [cancel] = mails(smtp_server, "BOOKING_CANCELLED")
    _, cancelled_event, _ = vevent(cancel)
    moved_event = next(vevent(m)[1] for m in moved if m["To"] == "c0@example.com")
    assert str(cancelled_event["uid"]) == str(moved_event["uid"])
    assert cancelled_event["sequence"] > moved_event["sequence"] > 0
    assert cancelled_event["attendee"].params["PARTSTAT"] == "DECLINED"


def test_notification_invitations_without_a_booking_get_their_own_uid(client_for, make_user, smtp_server):
    operator = client_for(make_user(roles=["IT_OPERATOR"]))
    data = {"itemName": "Talk", "startTime": "2030-01-01T10:00:00Z", "endTime": "2030-01-01T11:00:00Z"}
    for _ in range(2):
        assert operator.post("/notifications", {"type": "BOOKING_CONFIRMED", "recipient": "a@example.com",
                                                "data": data}, format="json").status_code == 202
    outbox_dispatch_until_empty()

    uids = {str(vevent(m)[1]["uid"]) for m in mails(smtp_server)}
    assert len(uids) == 2 and not any("None" in u for u in uids)


def test_a_bare_date_is_not_an_invitation_time(client_for, make_user):
    response = client_for(make_user(roles=["IT_OPERATOR"])).post(
        "/notifications", {"type": "BOOKING_CONFIRMED", "recipient": "a@example.com",
                           "data": {"startTime": "2031-03-30", "endTime": "2031-03-31"}}, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"data.startTime", "data.endTime"}


def test_a_subject_that_looks_encoded_is_shown_as_written(client_for, make_user, smtp_server):
    spoof = "=?utf-8?q?Hello=0D=0ABcc=3A_x?="
    client_for(make_user(roles=["IT_OPERATOR"])).post(
        "/notifications", {"type": "GENERIC", "recipient": "a@example.com",
                           "data": {"subject": spoof, "message": "m"}}, format="json")
    outbox_dispatch_until_empty()

    [message] = mails(smtp_server)
    assert subject(message) == spoof


def test_a_generic_notification_shows_its_subject_and_message_once(client_for, make_user, smtp_server):
    client_for(make_user(roles=["IT_OPERATOR"])).post(
        "/notifications", {"type": "GENERIC", "recipient": "a@example.com",
                           "data": {"subject": "Maintenance", "message": "Back at noon", "ticket": "T-7"}},
        format="json")
    outbox_dispatch_until_empty()

    text = mails(smtp_server)[0].get_body(preferencelist=("plain",)).get_content()
    assert text.count("Back at noon") == 1 and "Maintenance" not in text and "ticket: T-7" in text


@pytest.mark.parametrize("field, value", [
    ("name", "A\x1bB"), ("name", "Line\nbreak"), ("location", "Room\x7f1"), ("category", "Tech\u2028Talk"),
    ("tags", ["ok", "b\x0bad"]), ("name", "Invoice \u202egnp.exe"), ("location", "Hall \u2066A\u2069"),
    ("description", "Agenda \u202e reversed"),
])
def test_one_line_item_texts_refuse_control_characters(client_for, make_user, field, value):
    body = {"name": "Talk", "startTime": "2031-09-15T10:00:00", "endTime": "2031-09-15T12:00:00", "capacity": 5,
            field: value}
    response = client_for(make_user(roles=["EVENT_ORGANIZER"])).post("/api/v1/items", body, format="json")
    assert response.status_code == 400
    assert any(key.startswith(field) for key in response.json()["fields"])


def test_descriptions_keep_tabs_and_line_breaks(client_for, make_user):
    body = {"name": "\u05e9\u05dc\u05d5\u05dd\u200f Talk", "startTime": "2031-09-15T10:00:00",
            "endTime": "2031-09-15T12:00:00", "capacity": 5, "description": "Agenda:\n\t1. Intro\r\n\t2. Q&A"}
    response = client_for(make_user(roles=["EVENT_ORGANIZER"])).post("/api/v1/items", body, format="json")
    assert response.status_code == 201
    assert response.json()["description"] == body["description"]
