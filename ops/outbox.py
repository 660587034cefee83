"""Outbox write side: called inside the transaction of the change that causes the event."""

from django.db import transaction

from .models import OutboxEvent


class EventType:
    USER_REGISTERED = "USER_REGISTERED"
    BOOKING_CONFIRMED = "BOOKING_CONFIRMED"
    BOOKING_CANCELLED = "BOOKING_CANCELLED"
    NEW_BOOKING = "NEW_BOOKING"
    GENERIC = "GENERIC"


def outbox_enqueue(*, event_type: str, recipient_email: str = "", payload: dict | None = None) -> OutboxEvent:
    event = OutboxEvent.objects.create(
        event_type=event_type, recipient_email=recipient_email, payload=payload or {}
    )
    transaction.on_commit(outbox_nudge)
    return event


def outbox_nudge() -> None:
    """Ask a worker to dispatch now; if the broker is down the periodic sweep delivers later."""
    from .tasks import outbox_nudge_task

    outbox_nudge_task()


def outbox_enqueue_user_registered(*, user) -> OutboxEvent:
    return outbox_enqueue(
        event_type=EventType.USER_REGISTERED,
        recipient_email=user.email,
        payload={"userId": user.pk, "username": user.username, "email": user.email},
    )


DOCUMENT_SYNC = "DOCUMENT_SYNC"
# Pseudo entity type of a DOCUMENT_SYNC: every booking document of the item with this id.
ITEM_BOOKINGS = "item_bookings"
JOB_RUN = "JOB_RUN"


def outbox_enqueue_document_sync(*entities: tuple[str, object]) -> OutboxEvent:
    """Bring the customer documents of `entities` ((entity_type, id) pairs, e.g.
    ("booking", 7), ("item", 3)) up to date after this transaction commits."""
    return outbox_enqueue(
        event_type=DOCUMENT_SYNC,
        payload={"entities": [[entity_type, str(entity_id)] for entity_type, entity_id in entities]},
    )
