"""Outbox write side: called inside the transaction of the change that causes the event."""

import logging

from bookings_project.cache import RedisResting, shared_key, shared_redis
from bookings_project.db import insert_many
from bookings_project.transactions import on_commit_once

from .models import OutboxEvent

logger = logging.getLogger(__name__)


class EventType:
    USER_REGISTERED = "USER_REGISTERED"
    BOOKING_CONFIRMED = "BOOKING_CONFIRMED"
    BOOKING_CANCELLED = "BOOKING_CANCELLED"
    NEW_BOOKING = "NEW_BOOKING"
    GENERIC = "GENERIC"


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
    from .tasks import outbox_dispatch_enqueue

    redis = shared_redis()
    if redis is not None:
        try:
            if not redis.set(shared_key(NUDGE_PENDING_KEY), 1, nx=True, px=NUDGE_PENDING_MS):
                return
        except RedisResting:  # failed moments ago (and said so then): the sweep delivers
            return
        except Exception as exc:  # noqa: BLE001 - the broker is this Redis: publishing would fail too
            logger.warning("Could not nudge the outbox dispatcher (%s); the sweep will deliver", exc)
            return
    outbox_dispatch_enqueue()


def outbox_nudge_taken() -> None:
    """A dispatcher is starting: the next commit must nudge again."""
    redis = shared_redis(always_try=True)
    if redis is not None:
        try:
            redis.delete(shared_key(NUDGE_PENDING_KEY))
        except Exception:  # noqa: BLE001 - Redis down: nudges are failing anyway; the flag expires
            pass


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
