"""Email rendering and sending through Django's email backend.

One template set per type under templates/emails/: `<type>.subject.txt`, `<type>.txt`,
`<type>.html`. The caller's stable id becomes the Message-ID, so a redelivered email can be
recognised (and de-duplicated) by the receiving side. Templates never fetch anything: no
user-controlled URL is ever requested (SSRF-free); they only render the given context.
"""

import smtplib
from datetime import UTC, datetime
from email.header import Header
from email.utils import parseaddr
from urllib.parse import quote

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.encoding import punycode

from bookings_project.datetimes import parse_api_datetime
from bookings_project.errors import exception_chain
from bookings_project.text import one_line

from .outbox import EventType

# One template per email event type (templates/emails/<type>.txt, .html and .subject.txt).
EMAIL_TEMPLATES = (EventType.USER_REGISTERED, EventType.BOOKING_CONFIRMED, EventType.BOOKING_CANCELLED,
                   EventType.NEW_BOOKING, EventType.GENERIC)
BOOKING_TEMPLATES = {EventType.BOOKING_CONFIRMED, EventType.BOOKING_CANCELLED}
# Every outbox event that sends an email: the requestable templates, and the emails the system
# sends itself (the account's security notices, booking reminders).
EMAIL_EVENT_TYPES = (*EMAIL_TEMPLATES, EventType.PASSWORD_RESET, EventType.EMAIL_CHANGED, EventType.PASSWORD_CHANGED,
                     EventType.BOOKING_REMINDER)


def _sender() -> str:
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1]


def _domain() -> str:
    return _sender().rpartition("@")[2] or "bookings.local"


def message_id_for(stable_id: str) -> str:
    return f"<{stable_id}@{_domain()}>"


def email_render(*, template: str, context: dict) -> tuple[str, str, str]:
    """(subject, text, html) for a template name from EMAIL_EVENT_TYPES."""
    name = template.lower()
    # One line of printable text whatever the context held (a header never carries a line break
    # or a control character: no injection, and no email that fails every attempt on
    # BadHeaderError).
    subject = one_line(render_to_string(f"emails/{name}.subject.txt", context))[:200]
    text = render_to_string(f"emails/{name}.txt", context)
    html = render_to_string(f"emails/{name}.html", context)
    return subject, text, html


def _subject_header(subject: str) -> str:
    """An ASCII subject goes out as it is, unless it holds "=?": a mail client would decode
    that as an RFC 2047 encoded word (a subject could then display a line break or another
    header). Such a subject is encoded itself, so it displays exactly as written."""
    if "=?" not in subject:
        return subject
    return Header(subject, "utf-8").encode(linesep=" ")


def ics_datetime(value) -> datetime | None:
    """A booking payload's time (ISO 8601 date and time; the outbox's own payloads carry their
    offset, a /notifications request's time without one is UTC like every core API time) as an
    aware UTC datetime; None when absent, a bare date or not ISO 8601 (the payload of a
    /notifications request is the caller's, so it may hold anything)."""
    if not isinstance(value, str) or len(value) <= len("2025-09-15"):
        return None
    try:
        return parse_api_datetime(value).astimezone(UTC)
    except ValueError:
        return None


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _local_day(moment: datetime) -> str:
    return f"{_DAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


def _zone_abbreviation(moment: datetime) -> str:
    name = moment.tzname() or ""
    return f"UTC{name}" if name[:1] in "+-" else name  # zones without an abbreviation: "+03"


def local_time_span(start, end) -> str:
    """A booking's times as its email shows them: in TIME_ZONE (the booking API's zone, the
    one its organizer wrote), each side with the abbreviation in force then (a span across a
    DST change shows both) and the zone's name once: "Sun 26 Oct 2031, 01:30 CEST – 04:30 CET
    (Europe/Berlin)". Times read as the .ics reads them (ics_datetime); either not a time (a
    /notifications request's free-form data): both shown as written."""
    start_utc, end_utc = ics_datetime(start), ics_datetime(end)
    if start_utc is None or end_utc is None:
        return f"{start} – {end}"
    zone = timezone.get_default_timezone()
    first, last = timezone.localtime(start_utc, zone), timezone.localtime(end_utc, zone)
    first_zone, last_zone = _zone_abbreviation(first), _zone_abbreviation(last)
    if first.date() == last.date() and first_zone == last_zone:
        span = f"{_local_day(first)}, {first:%H:%M}–{last:%H:%M} {last_zone}"
    else:
        until = f"{last:%H:%M}" if first.date() == last.date() else f"{_local_day(last)}, {last:%H:%M}"
        span = (f"{_local_day(first)}, {first:%H:%M} {first_zone} – {until} {last_zone}" if first_zone != last_zone
                else f"{_local_day(first)}, {first:%H:%M} – {until} {last_zone}")
    name = getattr(zone, "key", str(zone))
    return span if name in {first_zone, last_zone} else f"{span} ({name})"


_MAILTO_SAFE = "!$'()*+;="  # RFC 6068 some-delims a local part may hold as they are (not "," or ":")


def mailto(address: str) -> str:
    """An email address as an RFC 6068 mailto URI that names exactly it: a character a URI
    cannot hold, or that means something in one ("?" headers, "#" a fragment, "%" an escape,
    "," a second address, a quoted local part's quotes and spaces), percent-encoded; an
    internationalized domain as its ASCII (IDNA) form, as Django sends it."""
    local, _, domain = address.rpartition("@")
    return f"mailto:{quote(local, safe=_MAILTO_SAFE)}@{punycode(domain) if domain else ''}"


def _ics_sequence(payload: dict, *, cancelled: bool) -> int:
    """RFC 5545 SEQUENCE: the booking's revision (0 at the confirmation, one more for each move
    and for the cancellation), so each update outranks the one before it, and a redelivered
    email keeps its number. Payloads from before revisions were counted: 1 for a cancellation."""
    revision = payload.get("revision")
    if isinstance(revision, int) and not isinstance(revision, bool) and 0 <= revision < 2**31:
        return revision
    return 1 if cancelled or payload.get("rescheduled") else 0


def booking_ics(payload: dict, *, cancelled: bool, recipient: str, stable_id: str,
                issued_at: datetime) -> bytes | None:
    """An iCalendar (RFC 5545) invitation, or its cancellation, for a booking payload, in the
    iTIP form (RFC 5546) calendar clients apply on their own: METHOD, ORGANIZER (the platform),
    ATTENDEE (the recipient), one UID per booking, times in UTC. `issued_at` (when the change
    happened: the outbox event's or job's creation) is the DTSTAMP, so a redelivery carries the
    same calendar. None without a usable start and end (the email goes out without it rather
    than failing every attempt)."""
    from icalendar import Calendar, Event, vCalAddress

    start, end = ics_datetime(payload.get("startTime")), ics_datetime(payload.get("endTime"))
    if start is None or end is None or end <= start:
        return None
    calendar = Calendar()
    calendar.add("prodid", "-//Booking platform//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "REQUEST")
    event = Event()
    booking_id = payload.get("bookingId")
    event.add("uid", f"booking-{booking_id}@{_domain()}" if booking_id is not None else f"{stable_id}@{_domain()}")
    event.add("dtstamp", issued_at.astimezone(UTC))
    event.add("sequence", _ics_sequence(payload, cancelled=cancelled))
    event.add("summary", one_line(str(payload.get("itemName") or "Booking")))
    event.add("dtstart", start)
    event.add("dtend", end)
    if payload.get("location"):
        event.add("location", one_line(str(payload["location"])))
    organizer = vCalAddress(mailto(_sender() or f"bookings@{_domain()}"))
    organizer.params["cn"] = "Booking platform"
    event.add("organizer", organizer)
    attendee = vCalAddress(mailto(recipient))
    attendee.params.update({"role": "REQ-PARTICIPANT", "rsvp": "FALSE",
                            "partstat": "DECLINED" if cancelled else "ACCEPTED"})
    event.add("attendee", attendee)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    calendar.add_component(event)
    return calendar.to_ical()


def email_build(*, template: str, recipient: str, context: dict, stable_id: str,
                issued_at: datetime | None = None, connection=None) -> EmailMultiAlternatives:
    # `email` is the recipient unless the context names one: a template's `default:email` (a
    # requested USER_REGISTERED greets `username`, else `email`) raises when it is missing.
    subject, text, html = email_render(template=template, context={"email": recipient, **context})
    message = EmailMultiAlternatives(
        subject=_subject_header(subject), body=text, to=[recipient], connection=connection,
        headers={"Message-ID": message_id_for(stable_id), "X-Bookings-Event": template},
    )
    message.attach_alternative(html, "text/html")
    cancelled = template == "BOOKING_CANCELLED"
    ics = None
    if template in BOOKING_TEMPLATES:
        ics = booking_ics(context, cancelled=cancelled, recipient=recipient, stable_id=stable_id,
                          issued_at=issued_at or timezone.now())
    if ics is not None:  # Django adds the charset parameter itself
        message.attach("booking.ics", ics, f"text/calendar; method={'CANCEL' if cancelled else 'REQUEST'}")
    return message


def email_send(*, template: str, recipient: str, context: dict, stable_id: str,
               issued_at: datetime | None = None, connection=None) -> None:
    """Render and send one email; raises on any delivery failure (the caller retries).
    `issued_at`: when the change it reports happened (stable across redeliveries)."""
    email_build(template=template, recipient=recipient, context=context, stable_id=stable_id,
                issued_at=issued_at, connection=connection).send(fail_silently=False)


def delivery_failure_is_transient(exc: BaseException) -> bool:
    """Whether a failed delivery was the mail server's passing trouble rather than the
    message's: unreachable, timed out, disconnected, or a 4xx "try again later" reply (through
    the exception's causes too). A 5xx refusal or a rendering error is the message's."""
    for cause in exception_chain(exc):
        if getattr(cause, "transient", False):
            return True
        if isinstance(cause, smtplib.SMTPRecipientsRefused):
            return bool(cause.recipients) and all(400 <= code < 500 for code, _ in cause.recipients.values())
        if isinstance(cause, smtplib.SMTPResponseException):
            return 400 <= cause.smtp_code < 500
        if isinstance(cause, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError)):
            return True
    return False


def mail_server_failing(exc: BaseException) -> bool:
    """Whether a transient failure was the mail server's as a whole in a way every next email
    would pay for too: unreachable, timed out, disconnected, refusing the connection or the
    greeting. A reply about one message (a 4xx to its sender, recipients or data: a full
    mailbox, greylisting) is about that message, and costs the next one nothing to find out."""
    for cause in exception_chain(exc):
        if isinstance(cause, smtplib.SMTPRecipientsRefused) or (
                isinstance(cause, smtplib.SMTPResponseException)
                and not isinstance(cause, (smtplib.SMTPConnectError, smtplib.SMTPHeloError))):
            return False
    return delivery_failure_is_transient(exc)
