"""Writes on bookings. Lock order (see catalog.services): user → item → booking → tier.

booking_create serializes one user's requests on their user row, claims a seat with
conditional counter UPDATEs, and relies on PostgreSQL's exclusion constraint as a backstop
against overlapping CONFIRMED bookings. Outbox rows are written in the same transaction.
"""

from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from bookings_project.errors import Forbidden
from catalog.locking import contention_guard, sqlstate
from catalog.models import BookableItem
from catalog.selectors import item_can_manage, item_get_visible
from catalog.services import item_lock, item_seat_claim, item_seat_release, item_tier_offer
from ops.models import OutboxEvent
from ops.outbox import EventType, document_sync_event, outbox_enqueue_many, outbox_event

from .conflicts import overlap_q, transition_allowed
from .exceptions import (BookingLimitReached, BookingNotFound, BookingTimeConflict, InvalidStatusTransition,
                         ItemAlreadyStarted)
from .models import ACTIVE_STATUSES, Booking, BookingStatus
from .selectors import booking_conflicts

EXCLUSION_VIOLATION = "23P01"


def booking_event_payload(booking: Booking) -> dict:
    """Body of BOOKING_CONFIRMED / BOOKING_CANCELLED outbox events (the email templates use it)."""
    return {
        "bookingId": booking.pk,
        "userId": booking.user_id,
        "username": booking.user.username,
        "itemId": booking.item_id,
        "itemName": booking.item.name,
        "location": booking.item.location,
        "startTime": timezone.localtime(booking.start_time).isoformat(),
        "endTime": timezone.localtime(booking.end_time).isoformat(),
        "tier": booking.tier.name if booking.tier_id else None,
        "pricePaid": f"{booking.price_paid:.2f}",
        "status": booking.status,
    }


def _announce(booking: Booking, event_type: str | None) -> list[OutboxEvent]:
    """The booking's email (if any) and document refresh, in one INSERT."""
    events = [document_sync_event(("booking", booking.pk), ("item", booking.item_id))]
    if event_type is not None:
        events.insert(0, outbox_event(event_type=event_type, recipient_email=booking.user.email,
                                      payload=booking_event_payload(booking)))
    return outbox_enqueue_many(events)


def _raise_overlap_as_conflict(exc: IntegrityError) -> None:
    if sqlstate(exc) == EXCLUSION_VIOLATION:
        raise BookingTimeConflict() from exc
    raise exc


def _lock_user(user) -> None:
    """One user's parallel bookings run one after the other; a deactivated user cannot book."""
    active = list(User.objects.select_for_update().filter(pk=user.pk).values_list("is_active", flat=True))
    if active != [True]:
        raise Forbidden("This account is not active")


def _check_booking_cap(user) -> None:
    """Business-flow protection (OWASP API6): one account cannot hoard seats. Runs under the
    user lock, so parallel requests cannot slip past the cap together."""
    upcoming = Booking.objects.filter(user=user, status__in=ACTIVE_STATUSES, end_time__gt=timezone.now())
    if upcoming.count() >= settings.MAX_ACTIVE_BOOKINGS_PER_USER:
        raise BookingLimitReached()


def booking_create(*, user, item_id, tier_name: str | None = None) -> Booking:
    try:
        with contention_guard(), transaction.atomic():
            _lock_user(user)
            _check_booking_cap(user)
            item = item_get_visible(actor=user, item_id=item_id)
            if item.start_time <= timezone.now():
                raise ItemAlreadyStarted()
            if booking_conflicts(user=user, start=item.start_time, end=item.end_time).exists():
                raise BookingTimeConflict()
            offered = item_tier_offer(item=item, tier_name=tier_name)
            booking = Booking.objects.create(
                user=user, item=item, tier=offered, status=BookingStatus.CONFIRMED,
                price_paid=offered.price if offered is not None else Decimal("0.00"),
                start_time=item.start_time, end_time=item.end_time,
            )
            [email, _] = _announce(booking, EventType.BOOKING_CONFIRMED)
            # The seat is claimed last: the hot item row stays locked only until COMMIT.
            sold = item_seat_claim(item_id=item.pk, offered=offered, tier_name=tier_name)
            if sold is not None and sold.pk != offered.pk:  # that tier filled up meanwhile (rare)
                booking.tier, booking.price_paid = sold, sold.price
                booking.save(update_fields=["tier", "price_paid", "updated_at"])
                OutboxEvent.objects.filter(pk=email.pk).update(payload=booking_event_payload(booking))
    except IntegrityError as exc:
        _raise_overlap_as_conflict(exc)
    return booking


def _transition(*, booking_id, target: str, check=None) -> Booking:
    """Move one booking to `target` under the item → booking locks; frees its seats when it
    stops being active. `check(booking)` runs on the locked row (permissions)."""
    head = Booking.objects.filter(pk=booking_id).values("item_id", "user_id").first()
    if head is None:
        raise BookingNotFound()
    try:
        with contention_guard(), transaction.atomic():
            if target == BookingStatus.CONFIRMED:
                list(User.objects.select_for_update().filter(pk=head["user_id"]).values_list("pk"))
            item_lock(item_id=head["item_id"])
            booking = (Booking.objects.select_related("user", "item", "tier", "item__organizer")
                       .select_for_update(of=("self",)).get(pk=booking_id))
            if check is not None:
                check(booking)
            if not transition_allowed(booking.status, target):
                raise InvalidStatusTransition(f"A {booking.status} booking cannot become {target}")
            if target == BookingStatus.CONFIRMED and booking_conflicts(
                    user=booking.user, start=booking.start_time, end=booking.end_time,
                    exclude_id=booking.pk).exists():
                raise BookingTimeConflict()
            was_active = booking.is_active
            booking.status = target
            booking.save(update_fields=["status", "updated_at"])
            if was_active and not booking.is_active:
                item_seat_release(item_id=booking.item_id, tier_id=booking.tier_id)
            _announce(booking, {BookingStatus.CANCELLED: EventType.BOOKING_CANCELLED,
                                BookingStatus.CONFIRMED: EventType.BOOKING_CONFIRMED}.get(target))
    except IntegrityError as exc:
        _raise_overlap_as_conflict(exc)
    return booking


def booking_cancel(*, actor, booking_id) -> Booking:
    """PUT /bookings/{id}/cancel: the booking's owner or an ADMIN."""
    def owner_or_admin(booking):
        if booking.user_id != actor.pk and not actor.is_admin:
            raise Forbidden("Only the booking's owner or an ADMIN may cancel it")

    return _transition(booking_id=booking_id, target=BookingStatus.CANCELLED, check=owner_or_admin)


def booking_set_status(*, actor, booking_id, status: str) -> Booking:
    """PUT /bookings/{id}/status: an ADMIN or the organizer of the booked item."""
    def organizer_or_admin(booking):
        if not item_can_manage(actor=actor, item=booking.item):
            raise Forbidden("Only an ADMIN or the item's organizer may change a booking's status")

    return _transition(booking_id=booking_id, target=status, check=organizer_or_admin)


def _cancel_all(bookings: QuerySet[Booking]) -> int:
    ids = list(bookings.filter(status__in=ACTIVE_STATUSES).order_by("item_id", "pk").values_list("pk", flat=True))
    for booking_id in ids:
        _transition(booking_id=booking_id, target=BookingStatus.CANCELLED)
    return len(ids)


def booking_cancel_future_for_user(*, user, actor) -> int:
    """A deactivated user's bookings of items that have not started are cancelled (with
    notifications); past bookings stay as history. `actor` is the ADMIN who deactivated them."""
    return _cancel_all(Booking.objects.filter(user=user, start_time__gt=timezone.now()))


def booking_cancel_for_item(*, item: BookableItem, actor) -> int:
    """Item deleted: its active bookings are cancelled with notifications."""
    return _cancel_all(Booking.objects.filter(item=item))


def booking_times_follow_item(*, item: BookableItem) -> int:
    """Item moved: its active bookings take the new times, unless that would make one of its
    bookers hold two overlapping confirmed bookings (409)."""
    active = Booking.objects.filter(item=item, status__in=ACTIVE_STATUSES)
    bookers = Booking.objects.filter(item=item, status=BookingStatus.CONFIRMED).values("user_id")
    clash = Booking.objects.filter(overlap_q(item.start_time, item.end_time), user_id__in=bookers,
                                   status=BookingStatus.CONFIRMED).exclude(item=item)
    if clash.exists():
        raise BookingTimeConflict("The new times overlap other confirmed bookings of this item's bookers")
    try:
        with transaction.atomic():
            return active.update(start_time=item.start_time, end_time=item.end_time)
    except IntegrityError as exc:
        _raise_overlap_as_conflict(exc)
