"""Email rendering and sending through Django's email backend.

One template set per type under templates/emails/: `<type>.subject.txt`, `<type>.txt`,
`<type>.html`. The caller's stable id becomes the Message-ID, so a redelivered email can be
recognised (and de-duplicated) by the receiving side. Templates never fetch anything: no
user-controlled URL is ever requested (SSRF-free); they only render the given context.
"""

from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from email.utils import parseaddr

EMAIL_TEMPLATES = ("USER_REGISTERED", "BOOKING_CONFIRMED", "BOOKING_CANCELLED", "NEW_BOOKING", "GENERIC")
BOOKING_TEMPLATES = {"BOOKING_CONFIRMED", "BOOKING_CANCELLED"}


def _domain() -> str:
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    return address.rpartition("@")[2] or "bookings.local"


def message_id_for(stable_id: str) -> str:
    return f"<{stable_id}@{_domain()}>"


def email_render(*, template: str, context: dict) -> tuple[str, str, str]:
    """(subject, text, html) for a template name from EMAIL_TEMPLATES."""
    name = template.lower()
    # One line whatever the context held (a header never carries a line break: no injection,
    # and no email that fails every attempt on BadHeaderError).
    subject = " ".join(render_to_string(f"emails/{name}.subject.txt", context).split())
    text = render_to_string(f"emails/{name}.txt", context)
    html = render_to_string(f"emails/{name}.html", context)
    return subject[:200], text, html


def ics_datetime(value) -> datetime | None:
    """A booking payload's time as the .ics needs it; None when absent or not ISO 8601 (the
    payload of a /notifications request is the caller's, so it may hold anything)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def booking_ics(payload: dict, *, cancelled: bool) -> bytes | None:
    """An iCalendar invitation (or its cancellation) for a booking payload; None without a
    usable start and end (the email goes out without it rather than failing every attempt)."""
    from icalendar import Calendar, Event

    start, end = ics_datetime(payload.get("startTime")), ics_datetime(payload.get("endTime"))
    if start is None or end is None:
        return None
    calendar = Calendar()
    calendar.add("prodid", "-//Booking platform//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "REQUEST")
    event = Event()
    event.add("uid", f"booking-{payload.get('bookingId')}@{_domain()}")
    event.add("summary", str(payload.get("itemName", "Booking")))
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("dtstamp", ics_datetime(payload.get("bookingDate")) or start)
    if payload.get("location"):
        event.add("location", str(payload["location"]))
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("sequence", 1 if cancelled else 0)
    calendar.add_component(event)
    return calendar.to_ical()


def email_build(*, template: str, recipient: str, context: dict, stable_id: str,
                connection=None) -> EmailMultiAlternatives:
    subject, text, html = email_render(template=template, context=context)
    message = EmailMultiAlternatives(
        subject=subject, body=text, to=[recipient], connection=connection,
        headers={"Message-ID": message_id_for(stable_id), "X-Bookings-Event": template},
    )
    message.attach_alternative(html, "text/html")
    cancelled = template == "BOOKING_CANCELLED"
    ics = booking_ics(context, cancelled=cancelled) if template in BOOKING_TEMPLATES else None
    if ics is not None:
        message.attach("booking.ics", ics,
                       f"text/calendar; method={'CANCEL' if cancelled else 'REQUEST'}; charset=utf-8")
    return message


def email_send(*, template: str, recipient: str, context: dict, stable_id: str, connection=None) -> None:
    """Render and send one email; raises on any delivery failure (the caller retries)."""
    email_build(template=template, recipient=recipient, context=context, stable_id=stable_id,
                connection=connection).send(fail_silently=False)
