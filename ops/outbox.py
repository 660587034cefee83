"""Outbox write side: events written inside the transaction of the change that causes them, the
nudge that wakes a dispatcher after commit, and the admin's retry of DEAD events."""

import logging
from collections.abc import Callable
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bookings_project.cache import RedisResting, redis_failed, shared_key, shared_redis
from bookings_project.db import insert_many
from bookings_project.transactions import on_commit_once

from .claims import fresh_attempts
from .models import OutboxEvent, OutboxStatus

logger = logging.getLogger(__name__)


class EventType:
    USER_REGISTERED = "USER_REGISTERED"
    BOOKING_CONFIRMED = "BOOKING_CONFIRMED"
    BOOKING_CANCELLED = "BOOKING_CANCELLED"
    NEW_BOOKING = "NEW_BOOKING"
    GENERIC = "GENERIC"
    # Security notices the system sends itself, never requestable through POST /notifications:
    # the reset email (made when sent: accounts.password_reset.password_reset_email_context), and
    # the notices of a changed email (to the old address) and a changed password.
    PASSWORD_RESET = "PASSWORD_RESET"
    EMAIL_CHANGED = "EMAIL_CHANGED"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"
    # "Your booking starts soon" (reservations.reminders), made when sent.
    BOOKING_REMINDER = "BOOKING_REMINDER"


def outbox_event(*, event_type: str, recipient_email: str = "", payload: dict | None = None) -> OutboxEvent:
    """An unsaved event, for outbox_enqueue_many."""
    return OutboxEvent(event_type=event_type, recipient_email=recipient_email, payload=payload or {})


def outbox_enqueue_many(events: list[OutboxEvent]) -> list[OutboxEvent]:
    """Write several events in one INSERT (the change's transaction) and nudge once after commit."""
    insert_many(events)
    # One nudge per transaction: it wakes a dispatcher that drains everything due.
    on_commit_once(outbox_nudge)
    return events


def outbox_enqueue(*, event_type: str, recipient_email: str = "", payload: dict | None = None) -> OutboxEvent:
    return outbox_enqueue_many([outbox_event(event_type=event_type, recipient_email=recipient_email,
                                             payload=payload)])[0]


# Set (with Redis) while a nudge is queued and its dispatcher has not started yet.
NUDGE_PENDING_KEY = "outbox:nudge-pending"
NUDGE_PENDING_MS = 3000  # in case that dispatcher never starts (the beat sweep covers the rest)


def outbox_nudge() -> None:
    """Ask a worker to dispatch now; if the broker is down the periodic sweep delivers later.

    A nudge already queued stands for this one: its dispatcher clears the flag before it claims
    (outbox_nudge_taken), so it will see every event committed before this call found the flag
    set. Under a booking load that is one Celery message per dispatcher run instead of one per
    booking (make bench: publishing a task cost a booking a fifth of its CPU time).
    """
    redis = shared_redis()
    if redis is not None:
        try:
            if not redis.set(shared_key(NUDGE_PENDING_KEY), 1, nx=True, px=NUDGE_PENDING_MS):
                return
        except RedisResting:  # failed moments ago (and said so then): the sweep delivers
            return
        except Exception as exc:  # noqa: BLE001 - the broker is this Redis: publishing would fail too
            _nudge_failed(exc)
            return
    outbox_dispatch_enqueue()


def outbox_dispatch_enqueue() -> None:
    """Queue an outbox_dispatch_run_task; never fails the caller (the beat sweep is the safety net)."""
    from .tasks import outbox_dispatch_run_task  # (the task runs the dispatcher, which imports this module)

    try:
        outbox_dispatch_run_task.apply_async(retry=False)
    except Exception as exc:  # broker unreachable: events wait in the DB
        if settings.REDIS_URL:  # the broker is the shared Redis: let it rest (bookings_project.cache)
            redis_failed()
        _nudge_failed(exc)


def _nudge_failed(exc: Exception) -> None:
    logger.warning("Could not nudge the outbox dispatcher (%s); the sweep will deliver", exc)


def outbox_nudge_taken() -> None:
    """A dispatcher is starting: the next commit must nudge again."""
    redis = shared_redis(always_try=True)
    if redis is not None:
        try:
            redis.delete(shared_key(NUDGE_PENDING_KEY))
        except Exception:  # noqa: BLE001 - Redis down: nudges are failing anyway; the flag expires
            pass


RETRY_CHUNK = 500  # events revived per transaction (a retry of thousands never holds their locks long)


def _revivable(now) -> Q:
    """DEAD events, and PENDING ones waiting out a backoff or a deferral, or left by a dispatcher
    that died. A queued event (all its attempts, due, held by nobody: new, or revived a moment ago
    by another retry) has nothing to revive: a second retry of it changes and records nothing."""
    queued = Q(status=OutboxStatus.PENDING, retry_count=0, claimed_until__isnull=True, error_message="")
    return (Q(status=OutboxStatus.DEAD) | Q(status=OutboxStatus.PENDING) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))) & ~queued


def outbox_retry(*, event_ids, on_revived: Callable[[list[UUID]], None] | None = None) -> list[UUID]:
    """Admin action: give DEAD events, and PENDING ones waiting out a backoff (or left by a
    dispatcher that died), a fresh set of attempts, now; returns the ids revived. SENT events,
    and events a dispatcher is delivering at this moment, are left alone: reviving one of those
    would send it twice; so are queued ones (_revivable). `on_revived(ids)` runs inside each chunk's transaction (the admin's
    history): if a later chunk fails, what was revived is recorded, and nothing else."""
    now = timezone.now()
    revivable, wanted, revived = _revivable(now), sorted(set(event_ids)), []
    try:
        for start in range(0, len(wanted), RETRY_CHUNK):
            with transaction.atomic():
                # Rows locked in primary-key order first: two retries over overlapping events (an
                # UPDATE locks its rows in whatever order it scans them) would otherwise deadlock.
                ids = list(OutboxEvent.objects.select_for_update()
                           .filter(revivable, pk__in=wanted[start:start + RETRY_CHUNK])
                           .order_by("pk").values_list("pk", flat=True))
                OutboxEvent.objects.filter(pk__in=ids).update(**fresh_attempts(now), error_message="")
                if on_revived is not None and ids:
                    on_revived(ids)
            revived += ids
    finally:
        if revived:
            outbox_nudge()  # (the chunks committed go out now even if a later one failed)
    return revived


def outbox_enqueue_user_registered(*, user) -> OutboxEvent:
    return outbox_enqueue(
        event_type=EventType.USER_REGISTERED,
        recipient_email=user.email,
        payload={"userId": user.pk, "username": user.username, "email": user.email},
    )


DOCUMENT_SYNC = "DOCUMENT_SYNC"
# Pseudo entity types of a DOCUMENT_SYNC, naming every document related to one row: the
# booking documents of an item (they carry its name), the booking documents of a user and the
# item documents of an organizer (they carry the username).
ITEM_BOOKINGS = "item_bookings"
USER_BOOKINGS = "user_bookings"
ORGANIZER_ITEMS = "organizer_items"
JOB_RUN = "JOB_RUN"


def document_sync_event(*entities: tuple[str, object]) -> OutboxEvent:
    """An unsaved DOCUMENT_SYNC event for `entities` ((entity_type, id) pairs)."""
    return outbox_event(event_type=DOCUMENT_SYNC,
                        payload={"entities": [[entity_type, str(entity_id)] for entity_type, entity_id in entities]})


def outbox_enqueue_document_sync(*entities: tuple[str, object]) -> OutboxEvent:
    """Bring the customer documents of `entities` ((entity_type, id) pairs, e.g.
    ("booking", 7), ("item", 3)) up to date after this transaction commits."""
    return outbox_enqueue_many([document_sync_event(*entities)])[0]
