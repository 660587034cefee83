"""What a booking email shows its reader: times in the platform's zone (TIME_ZONE) with the
zone named, across DST changes; calendar addresses a calendar client reads as written."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from catalog.tests.factories import make_item
from ops.dispatch import outbox_dispatch_until_empty
from ops.emails import email_build

pytestmark = pytest.mark.django_db(databases=["default", "documents"])

BERLIN = ZoneInfo("Europe/Berlin")


def bodies(message) -> tuple[str, str]:
    return (message.get_body(preferencelist=("plain",)).get_content(),
            message.get_body(preferencelist=("html",)).get_content())


def confirmation(smtp_server):
    [message] = [m["message"] for m in smtp_server.messages if m["message"]["X-Bookings-Event"] == "BOOKING_CONFIRMED"]
    return message


def test_booking_times_are_local_with_the_zone_named_across_a_dst_change(settings, client_for, make_user,
                                                                         smtp_server):
    settings.TIME_ZONE = "Europe/Berlin"
    organizer, customer = make_user(roles=["EVENT_ORGANIZER"]), make_user()
    # 01:30 summer time to 04:30 winter time (four real hours: the clocks go back at 03:00).
    start = datetime(2031, 10, 26, 1, 30, tzinfo=BERLIN).astimezone(UTC)
    item = make_item(organizer, name="Night walk", start=start, hours=4, capacity=5)
    client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json")
    outbox_dispatch_until_empty()

    text, html = bodies(confirmation(smtp_server))
    when = "Sun 26 Oct 2031, 01:30 CEST – 04:30 CET (Europe/Berlin)"
    assert f"When:    {when}" in text.splitlines()
    assert f"<td>{when}</td>" in html
    assert "2031-10-26T" not in text + html  # no machine format


def test_booking_times_in_utc_name_utc_and_a_span_over_midnight_shows_both_dates(client_for, make_user,
                                                                                   smtp_server):
    organizer, customer = make_user(roles=["EVENT_ORGANIZER"]), make_user()
    item = make_item(organizer, start=datetime(2031, 3, 3, 22, 0, tzinfo=UTC), hours=3, capacity=5)
    client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json")
    outbox_dispatch_until_empty()

    text, _ = bodies(confirmation(smtp_server))
    assert "When:    Mon 3 Mar 2031, 22:00 – Tue 4 Mar 2031, 01:00 UTC" in text.splitlines()


@pytest.mark.parametrize(("data", "when"), [
    # a /notifications time without an offset is UTC (as in its .ics), shown in TIME_ZONE
    ({"startTime": "2031-07-01T08:00:00", "endTime": "2031-07-01T09:30:00Z"},
     "Tue 1 Jul 2031, 10:00–11:30 CEST (Europe/Berlin)"),
    # what is not a time is shown as the request wrote it
    ({"startTime": "soon", "endTime": None}, "soon – None"),
])
def test_requested_booking_emails_show_their_times_in_the_platform_zone(settings, data, when):
    settings.TIME_ZONE = "Europe/Berlin"
    message = email_build(template="BOOKING_CONFIRMED", recipient="a@example.com",
                          context={"itemName": "Talk", **data}, stable_id="job-1").message()
    [text] = [p.get_payload(decode=True).decode() for p in message.walk() if p.get_content_type() == "text/plain"]
    assert f"When:    {when}\n" in text


@pytest.mark.parametrize(("recipient", "uri"), [
    ("carol@example.com", "mailto:carol@example.com"),
    ("o'brien+x@example.com", "mailto:o'brien+x@example.com"),
    # RFC 6068: "?" starts header fields, "#" a fragment, "%" an escape, "," separates
    # addresses, and a quoted local part's space and quotes are not URI characters at all.
    ("a?b@example.com", "mailto:a%3Fb@example.com"),
    ("a#b%c@example.com", "mailto:a%23b%25c@example.com"),
    ('"a b,c"@example.com', "mailto:%22a%20b%2Cc%22@example.com"),
    ("ann@exämple.com", "mailto:ann@xn--exmple-cua.com"),
])
def test_attendee_addresses_are_mailto_uris_of_exactly_the_recipient(recipient, uri):
    message = email_build(template="BOOKING_CONFIRMED", recipient=recipient, stable_id="job-1",
                          context={"bookingId": 1, "startTime": "2031-07-01T08:00:00Z",
                                   "endTime": "2031-07-01T09:00:00Z"}).message()
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    [event] = Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")
    assert str(event["attendee"]) == uri


def test_a_time_that_is_not_one_is_escaped_in_the_html_part():
    message = email_build(template="BOOKING_CONFIRMED", recipient="a@example.com", stable_id="job-1",
                          context={"startTime": "<img src=https://evil.example/x>", "endTime": None}).message()
    [html] = [p.get_payload(decode=True).decode() for p in message.walk() if p.get_content_type() == "text/html"]
    assert "<img" not in html and "&lt;img src=https://evil.example/x&gt; – None" in html
