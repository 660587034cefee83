"""Reminder emails: "your booking starts soon", BOOKING_REMINDER_HOURS before the item starts.

Beat's sweep (every five minutes) queues one outbox event per CONFIRMED booking whose item
starts within the window and that was made before the window opened (a booking made later has
just had its confirmation), marking it `reminded_at` in the same transaction: each booking is
reminded once, however many sweeps run, at once or after a crash. Bookings a transition holds
locked at that moment are skipped (SKIP LOCKED) and reminded by the next sweep if still due.
The email is made when sent, from the booking as it is then: a booking cancelled, moved (its
revision changed) or started since is not reminded of.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ops.outbox import EventType, outbox_enqueue_many, outbox_event

from .models import Booking, BookingStatus
from .services import booking_event_payload

logger = logging.getLogger(__name__)

BATCH = 500  # bookings per transaction (one INSERT of their events)


def booking_reminders_due(*, now: datetime):
    """CONFIRMED bookings whose reminder is due at `now` and not yet queued."""
    window = timedelta(hours=settings.BOOKING_REMINDER_HOURS)
    return Booking.objects.filter(status=BookingStatus.CONFIRMED, reminded_at__isnull=True, user__booking_reminders=True,
                                  start_time__gt=now,
                                  start_time__lte=now + window, booking_date__lte=F("start_time") - window)


def booking_reminders_enqueue(*, now: datetime | None = None) -> int:
    """Queue the reminder of every booking due (booking_reminders_due); returns how many."""
    if not settings.BOOKING_REMINDER_HOURS:
        return 0
    now = now or timezone.now()
    queued = 0
    while True:
        with transaction.atomic():
            # Soonest start first: the outbox sends in the order queued, and the partial index
            # serves this order (by pk, PostgreSQL walked the whole booking history when many were due).
            due = booking_reminders_due(now=now).select_related("user").order_by("start_time", "pk")
            if connection.features.has_select_for_update_skip_locked:
                due = due.select_for_update(skip_locked=True, no_key=True, of=("self",))
            bookings = list(due[:BATCH])
            if not bookings:
                return queued
            Booking.objects.filter(pk__in=[b.pk for b in bookings]).update(reminded_at=now)
            outbox_enqueue_many([
                outbox_event(event_type=EventType.BOOKING_REMINDER, recipient_email=booking.user.email,
                             payload={"bookingId": booking.pk, "revision": booking.revision})
                for booking in bookings])
        queued += len(bookings)
        logger.info("queued %s booking reminder(s)", len(bookings))


def booking_reminder_email_context(*, booking_id, revision) -> tuple[str, dict] | None:
    """(recipient, template context) of a queued reminder, made now; None when there is nothing
    to remind of any more: the booking is gone, no longer CONFIRMED, moved since it was queued
    (its move notice went out; the new times get their own reminder), already started, or its
    account turned reminders off since."""
    booking = Booking.objects.select_related("user", "item").filter(
        pk=booking_id, status=BookingStatus.CONFIRMED, revision=revision, start_time__gt=timezone.now(),
        user__booking_reminders=True).first()
    return None if booking is None else (booking.user.email, booking_event_payload(booking))
