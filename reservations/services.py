"""Writes on bookings. Lock order (see catalog.services): user → item → booking → tier.

booking_create serializes one user's requests on their user row, claims the seat last with
counter increments that CHECK constraints refuse when full (sent with the COMMIT on
PostgreSQL), retries from a fresh read when refused, and relies on PostgreSQL's exclusion
constraint as a backstop against overlapping CONFIRMED bookings. Outbox rows are written in
the same transaction.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.models import User
from accounts.locking import user_lock
from bookings_project.db import constraint_name, db_value, insert_many, sqlstate
from bookings_project.datetimes import overlapping
from bookings_project.errors import Forbidden
from bookings_project.transactions import CommitOutcomeUnknown, atomic_with_tail
from catalog.exceptions import ItemBusy
from catalog.locking import contention_guard
from catalog.models import BookableItem
from catalog.selectors import item_can_manage, item_get_for_booking
from catalog.seats import (item_lock, item_seat_claim, item_seat_release, item_seats_release_all, item_tier_offer,
                           seat_claim_refused)
from ops.models import OutboxEvent
from ops.outbox import ITEM_BOOKINGS, EventType, document_sync_event, outbox_enqueue_many, outbox_event

from .conflicts import transition_allowed
from .exceptions import (BookingKeyReused, BookingLimitReached, BookingNotFound, BookingOutcomeUnknown,
                         BookingTimeConflict, CancellationTooLate, CompletionTooEarly, InvalidStatusTransition,
                         ItemAlreadyStarted)
from .models import ACTIVE_STATUSES, Booking, BookingStatus
from .selectors import booking_conflicts, booking_queryset, booking_upcoming, booking_visible

logger = logging.getLogger(__name__)

EXCLUSION_VIOLATION = "23P01"
MOVE_NOTICE_CHUNK = 1_000  # "Booking moved" outbox rows per INSERT


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
        "tier": booking.tier_name,
        "pricePaid": f"{booking.price_paid:.2f}",
        "status": booking.status,
        "bookingDate": timezone.localtime(booking.booking_date).isoformat(),
        "revision": booking.revision,
    }


def _booking_email(booking: Booking, event_type: str, **extra) -> OutboxEvent:
    """The (unsaved) outbox event of an email to the booking's owner about it."""
    return outbox_event(event_type=event_type, recipient_email=booking.user.email,
                        payload={**booking_event_payload(booking), **extra})


def _announce(booking: Booking, event_type: str | None) -> list[OutboxEvent]:
    """The booking's email (if any) and document refresh, in one INSERT."""
    events = [document_sync_event(("booking", booking.pk), ("item", booking.item_id))]
    if event_type is not None:
        events.insert(0, _booking_email(booking, event_type))
    return outbox_enqueue_many(events)


def _raise_overlap_as_conflict(exc: IntegrityError) -> None:
    if sqlstate(exc) == EXCLUSION_VIOLATION:
        raise BookingTimeConflict() from exc
    raise exc


def _lock_user(user) -> None:
    """accounts.locking.user_lock plus the account's is_active, read under that lock: one
    user's parallel bookings run one after the other; a deactivated user cannot book. Raw SQL
    (_LOCK_USER_SQL) because this is the measured hot booking path."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_USER_SQL, [user.pk])
        row = cursor.fetchone()
    if row is None or not row[0]:
        raise Forbidden("This account is not active")


def _check_booker(user, item: BookableItem) -> None:
    """Under the user lock, so a user's parallel requests cannot slip past these together:
    the booking cap (business-flow protection, OWASP API6) and no overlapping CONFIRMED booking
    (PostgreSQL's exclusion constraint backs this up)."""
    with connection.cursor() as cursor:
        cursor.execute(_BOOKER_SQL, [
            user.pk, *ACTIVE_STATUSES, db_value(Booking, "end_time", timezone.now()),
            user.pk, BookingStatus.CONFIRMED, db_value(Booking, "start_time", item.end_time),
            db_value(Booking, "end_time", item.start_time)])
        upcoming, clash = cursor.fetchone()
    if upcoming >= settings.MAX_ACTIVE_BOOKINGS_PER_USER:
        raise BookingLimitReached()
    if clash:
        raise BookingTimeConflict()


# Raw SQL on the hot booking path (see catalog.selectors.item_get_for_booking). The overlap
# test is bookings_project.datetimes.overlapping's: half-open ranges.
_LOCK_USER_SQL = f"SELECT is_active FROM {User._meta.db_table} WHERE id = %s" + (
    " FOR UPDATE" if connection.features.has_select_for_update else "")
_ACTIVE_PLACEHOLDERS = ", ".join(["%s"] * len(ACTIVE_STATUSES))
_BOOKER_SQL = f"""
    SELECT (SELECT count(*) FROM {Booking._meta.db_table}
            WHERE user_id = %s AND status IN ({_ACTIVE_PLACEHOLDERS}) AND end_time > %s),
           EXISTS (SELECT 1 FROM {Booking._meta.db_table}
                   WHERE user_id = %s AND status = %s AND start_time < %s AND end_time > %s)"""


# A refused claim (catalog.seats.item_seat_claim) means the item or a tier filled or changed
# since the read: the booking starts over from a fresh read, which starts at a later tier or
# says why it cannot book. An item with N tiers can need N + 1 attempts; the spare ones absorb
# edits of the item in the meantime.
SPARE_ATTEMPTS = 3
FOREIGN_KEY_VIOLATION = "23503"  # at COMMIT (deferred): the tier it read was removed meanwhile
REQUEST_KEY_CONSTRAINT = "booking_request_key_unique"


def booking_create(*, user, item_id, tier_name: str | None = None) -> Booking:
    booking, _ = booking_create_once(user=user, item_id=item_id, tier_name=tier_name)
    return booking


def booking_create_once(*, user, item_id, tier_name: str | None = None,
                        request_key: str | None = None) -> tuple[Booking, bool]:
    """(booking, created). With a `request_key` (the client's Idempotency-Key) the booking is
    made at most once per key: a retry gets the booking its key already made (created False),
    so a client that got no answer, or an 'outcome unknown' 503, can simply ask again."""
    attempts, read = 0, _Read()
    while True:
        attempts += 1
        try:
            return _booking_attempt(user=user, item_id=item_id, tier_name=tier_name, request_key=request_key,
                                    read=read)
        except IntegrityError as exc:
            # (the key's unique constraint backs up the check under the user lock: the next
            # attempt finds the booking that won. PostgreSQL names the constraint; SQLite
            # serializes writers, so there the check alone decides.)
            if not (seat_claim_refused(exc) or sqlstate(exc) == FOREIGN_KEY_VIOLATION
                    or constraint_name(exc) == REQUEST_KEY_CONSTRAINT):
                _raise_overlap_as_conflict(exc)
            if attempts >= read.tiers + SPARE_ATTEMPTS:
                raise ItemBusy() from exc


def _booking_made_with(user, request_key: str, item_id, tier_name: str | None) -> Booking | None:
    """The user's booking made under this key, if any; the key must name the same item, and
    the same tier (the name it was booked under) when the request names one."""
    earlier = booking_queryset().filter(user_id=user.pk, request_key=request_key).first()
    if earlier is not None and (str(earlier.item_id) != str(item_id) or (
            tier_name is not None and earlier.tier_name != tier_name)):
        raise BookingKeyReused()
    return earlier


@dataclass
class _Read:
    tiers: int = 0  # how many tiers the last attempt read


def _booking_attempt(*, user, item_id, tier_name: str | None, request_key: str | None,
                     read: _Read) -> tuple[Booking, bool]:
    booking = replayed = None
    try:
        with contention_guard(), atomic_with_tail() as at_commit:
            _lock_user(user)
            if request_key is not None and (replayed := _booking_made_with(user, request_key, item_id, tier_name)):
                return replayed, False
            item, tiers = item_get_for_booking(actor=user, item_id=item_id)
            read.tiers = len(tiers)
            if item.start_time <= timezone.now():
                raise ItemAlreadyStarted()
            _check_booker(user, item)
            offered = item_tier_offer(item=item, tiers=tiers, tier_name=tier_name)
            [booking] = insert_many([Booking(
                user=user, item=item, tier=offered, tier_name=offered.name if offered is not None else None,
                status=BookingStatus.CONFIRMED,
                price_paid=offered.price if offered is not None else Decimal("0.00"),
                start_time=item.start_time, end_time=item.end_time, request_key=request_key,
            )])
            _announce(booking, EventType.BOOKING_CONFIRMED)
            # The seat is claimed last, and sent with the COMMIT: the hot item row stays locked
            # only while the server runs these two statements.
            at_commit(lambda: item_seat_claim(item=item, tier=offered))
    except CommitOutcomeUnknown as exc:
        if replayed is not None:
            return replayed, False  # it wrote nothing: the answer stands whatever became of the COMMIT
        # Saved or not, only the database knows: if it was, the booking is in bookings/me and
        # its email goes out (its outbox row committed with it).
        logger.warning("Booking %s (user %s, item %s, key %r): connection lost at COMMIT, outcome unknown: %s",
                       booking.pk, user.pk, item_id, request_key, exc.__cause__)
        raise BookingOutcomeUnknown() from exc
    return booking, True


def _completion_not_before_start(booking: Booking) -> None:
    # Completing frees the seat (only active bookings hold one); before the start
    # someone else could then book it, and the item would hold more than its capacity.
    if booking.start_time > timezone.now():
        raise CompletionTooEarly()


def _confirmation_not_overlapping(booking: Booking) -> None:
    if booking_conflicts(user=booking.user, start=booking.start_time, end=booking.end_time,
                         exclude_id=booking.pk).exists():
        raise BookingTimeConflict()


@dataclass(frozen=True)
class _TargetRule:
    """What moving a booking to one status takes besides transition_allowed."""

    locks_user: bool = False  # before the item: the check then runs under the lock booking_create holds
    check: Callable[[Booking], None] | None = None  # on the locked row, after transition_allowed
    new_revision: bool = False  # the cancellation outranks every invitation before it
    event: str | None = None  # the booker's email


_TARGET_RULES = {
    BookingStatus.CONFIRMED: _TargetRule(locks_user=True, check=_confirmation_not_overlapping,
                                         event=EventType.BOOKING_CONFIRMED),
    BookingStatus.CANCELLED: _TargetRule(new_revision=True, event=EventType.BOOKING_CANCELLED),
    BookingStatus.COMPLETED: _TargetRule(check=_completion_not_before_start),
}


def _lock_booking(*, booking_id, head: dict, rule: _TargetRule) -> Booking:
    """A transition's locks in the project's order: user (if the rule asks) → item → booking
    (the tier rows come last, in item_seat_release)."""
    if rule.locks_user:
        user_lock(user_id=head["user_id"])
    item_lock(item_id=head["item_id"])
    return (Booking.objects.select_related("user", "item", "item__organizer")
            .select_for_update(of=("self",)).get(pk=booking_id))


def _reminder_window_open(booking: Booking) -> bool:
    """Whether its reminder would be due (reservations.reminders): a booking confirmed from then
    on has just had its confirmation, like one booked then, and gets no reminder minutes after."""
    hours = settings.BOOKING_REMINDER_HOURS
    return bool(hours) and booking.start_time - timedelta(hours=hours) <= timezone.now()


def _transition(*, booking_id, target: str, check=None, only_active: bool = False) -> Booking | None:
    """Move one booking to `target` under the user (when confirming) → item → booking locks;
    frees its seats when it stops being active. `check(booking)` runs on the locked row
    (permissions). `only_active`: a booking that stopped being active meanwhile (cancelled or
    completed by someone else) is left as it is and None returned, instead of a 409."""
    head = Booking.objects.filter(pk=booking_id).values("item_id", "user_id").first()
    if head is None:
        raise BookingNotFound()
    rule = _TARGET_RULES.get(target, _TargetRule())
    try:
        with contention_guard(), transaction.atomic():
            booking = _lock_booking(booking_id=booking_id, head=head, rule=rule)
            if only_active and not booking.is_active:
                return None
            if check is not None:
                check(booking)
            if not transition_allowed(booking.status, target):
                raise InvalidStatusTransition(f"A {booking.status} booking cannot become {target}")
            if rule.check is not None:
                rule.check(booking)
            was_active = booking.is_active
            booking.status = target
            if rule.new_revision:
                booking.revision += 1
            if target == BookingStatus.CONFIRMED and _reminder_window_open(booking):
                booking.reminded_at = timezone.now()  # the confirmation going out now stands for it
            booking.save(update_fields=["status", "revision", "updated_at", "reminded_at"])
            if was_active and not booking.is_active:
                item_seat_release(item_id=booking.item_id, tier_id=booking.tier_id)
            _announce(booking, rule.event)
    except IntegrityError as exc:
        _raise_overlap_as_conflict(exc)
    return booking


def booking_cancel(*, actor, booking_id) -> Booking:
    """PUT /bookings/{id}/cancel: the booking's owner or an ADMIN."""
    def owner_or_admin(booking):
        if not booking_visible(actor=actor, booking=booking):
            raise BookingNotFound()
        if booking.user_id != actor.pk and not actor.is_admin:
            raise Forbidden("Only the booking's owner or an ADMIN may cancel it")
        # Once the item has started the booking is history (and revenue): its owner can no
        # longer take it back; an ADMIN still can (a refund).
        if booking.is_active and booking.start_time <= timezone.now() and not actor.is_admin:
            raise CancellationTooLate()

    return _transition(booking_id=booking_id, target=BookingStatus.CANCELLED, check=owner_or_admin)


def booking_set_status(*, actor, booking_id, status: str) -> Booking:
    """PUT /bookings/{id}/status: an ADMIN or the organizer of the booked item."""
    def organizer_or_admin(booking):
        if not booking_visible(actor=actor, booking=booking):
            raise BookingNotFound()
        if not item_can_manage(actor=actor, item=booking.item):
            raise Forbidden("Only an ADMIN or the item's organizer may change a booking's status")

    return _transition(booking_id=booking_id, target=status, check=organizer_or_admin)


def _cancel_all(bookings: QuerySet[Booking]) -> int:
    """Cancel the active ones among `bookings`; one that someone else cancels or completes
    between the read and its lock is skipped (the caller's whole change must not fail on it)."""
    ids = list(bookings.filter(status__in=ACTIVE_STATUSES).order_by("item_id", "pk").values_list("pk", flat=True))
    cancelled = [_transition(booking_id=booking_id, target=BookingStatus.CANCELLED, only_active=True)
                 for booking_id in ids]
    return sum(booking is not None for booking in cancelled)


def booking_cancel_future_for_user(*, user) -> int:
    """A deactivated user's bookings of items that have not started are cancelled (with
    notifications); past bookings stay as history. (Who deactivated them is in the system log.)

    The caller holds the user's lock. The items of all the user's active bookings are locked
    next (lock order user → item, in key order) before "not started" is read: a move of one of
    those items (item_update holds its lock) in or out of the future is then seen at its new
    times, and a move after this commits sees the account deactivated (bookings_follow_item
    cancels then). Reading first let an ended item moved back into the future at that moment
    keep a deactivated account's booking."""
    held = Booking.objects.filter(user=user, status__in=ACTIVE_STATUSES).values("item_id")
    list(BookableItem.objects.select_for_update(no_key=True).filter(pk__in=held).order_by("pk")
         .values_list("pk", flat=True))
    return _cancel_all(booking_upcoming(user=user))


CANCEL_CHUNK = 500  # bookings per UPDATE, and per INSERT of their emails, when an item goes


def booking_cancel_for_item(*, item: BookableItem) -> int:
    """Item deleted: its active bookings are cancelled with notifications, in statements of a
    bounded size however many there are (a transition per booking ran nine statements each:
    3,000 bookings took 41 s on PostgreSQL, with the item locked). The caller holds the item's
    lock, which every transition takes before a booking's (_lock_booking) and which refuses new
    seat claims, so none of these bookings can change meanwhile; once all its active bookings
    are cancelled, the item and its tiers hold no seat."""
    ids = list(Booking.objects.filter(item=item, status__in=ACTIVE_STATUSES).order_by("pk")
               .values_list("pk", flat=True))
    now = timezone.now()
    for chunk in (ids[start:start + CANCEL_CHUNK] for start in range(0, len(ids), CANCEL_CHUNK)):
        # (a new revision, as _TARGET_RULES gives a cancellation: it outranks every invitation before it)
        Booking.objects.filter(pk__in=chunk).update(status=BookingStatus.CANCELLED, revision=F("revision") + 1,
                                                    updated_at=now)
        outbox_enqueue_many([
            _booking_email(booking, EventType.BOOKING_CANCELLED)
            for booking in Booking.objects.filter(pk__in=chunk).select_related("user", "item").order_by("pk")])
    if ids:
        item_seats_release_all(item_id=item.pk)
        outbox_enqueue_many([document_sync_event((ITEM_BOOKINGS, item.pk), ("item", item.pk))])
    return len(ids)


def bookings_follow_item(*, item: BookableItem, times: bool, place: bool) -> int:
    """Item moved — to new times, a new place, or both —: every booker gets an email saying what
    changed, with an updated calendar invitation (same UID, the booking's revision one higher).
    New times are the active bookings' own, unless that would make one of its bookers hold two
    overlapping confirmed bookings (409). A started item moved back into the future first
    cancels (with an email) the bookings of accounts deactivated since: a deactivation left
    them as history, and a deactivated account holds no future booking."""
    active = Booking.objects.filter(item=item, status__in=ACTIVE_STATUSES)
    if times:
        if item.start_time > timezone.now():
            _cancel_all(Booking.objects.filter(item=item, user__is_active=False))
        bookers = Booking.objects.filter(item=item, status=BookingStatus.CONFIRMED).values("user_id")
        clash = Booking.objects.filter(overlapping(item.start_time, item.end_time), user_id__in=bookers,
                                       status=BookingStatus.CONFIRMED).exclude(item=item)
        if clash.exists():
            raise BookingTimeConflict("The new times overlap other confirmed bookings of this item's bookers")
        try:
            with transaction.atomic():
                # (a reminder queued for the old times is dropped, and the new times get their own)
                moved = active.update(start_time=item.start_time, end_time=item.end_time,
                                      revision=F("revision") + 1, reminded_at=None)
        except IntegrityError as exc:
            _raise_overlap_as_conflict(exc)
    else:
        moved = active.update(revision=F("revision") + 1)
    # In INSERTs of a bounded size however many bookings the item has.
    changed = [name for name, did in (("times", times), ("place", place)) if did]
    bookings = active.select_related("user", "item").order_by("pk").iterator(chunk_size=MOVE_NOTICE_CHUNK)
    while chunk := list(islice(bookings, MOVE_NOTICE_CHUNK)):
        outbox_enqueue_many([_booking_email(booking, EventType.BOOKING_CONFIRMED, rescheduled=True, changed=changed)
                             for booking in chunk])
    return moved
