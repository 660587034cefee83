"""Outbox write side: called inside the transaction of the change that causes the event."""

from bookings_project.transactions import on_commit_once

from .models import OutboxEvent


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
    OutboxEvent.objects.bulk_create(events)
    # One nudge per transaction: it wakes a dispatcher that drains everything due.
    on_commit_once(outbox_nudge)
    return events


def outbox_enqueue(*, event_type: str, recipient_email: str = "", payload: dict | None = None) -> OutboxEvent:
    return outbox_enqueue_many([outbox_event(event_type=event_type, recipient_email=recipient_email,
                                             payload=payload)])[0]


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


def document_sync_event(*entities: tuple[str, object]) -> OutboxEvent:
    """An unsaved DOCUMENT_SYNC event for `entities` ((entity_type, id) pairs)."""
    return outbox_event(event_type=DOCUMENT_SYNC,
                        payload={"entities": [[entity_type, str(entity_id)] for entity_type, entity_id in entities]})


def outbox_enqueue_document_sync(*entities: tuple[str, object]) -> OutboxEvent:
    """Bring the customer documents of `entities` ((entity_type, id) pairs, e.g.
    ("booking", 7), ("item", 3)) up to date after this transaction commits."""
    return outbox_enqueue_many([document_sync_event(*entities)])[0]
