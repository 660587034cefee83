"""Outbox dispatcher: claims due events (ops.claims), runs each event's handler
(ops.handlers), records the outcome.

A dispatcher that dies mid-batch loses nothing: its unfinished events become due again when
the lease runs out. One whose database goes away mid-batch waits for it (ops.outages), then
hands back what it did not record. Before each run, events that died only of a mail server
outage come back once it delivers (ops.revival); an operator revives DEAD events with
`ops.outbox.outbox_retry`.
"""

import logging
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bookings_project.db import DATABASE_UNAVAILABLE

from .claims import DEFERRED, outbox_claim, record_deferral, record_failure, record_outcome, record_sent
from .emails import delivery_failure_is_transient
from .exceptions import EventDeferred
from .handlers import BatchContext, handler_for, sync_batch_documents
from .models import OutboxEvent, OutboxStatus
from .outages import database_wait
from .outbox import DOCUMENT_SYNC, JOB_RUN, outbox_nudge, outbox_nudge_taken
from .revival import outbox_revive_after_outage

logger = logging.getLogger(__name__)


def outbox_process(event: OutboxEvent, ctx: BatchContext) -> str:
    """Run one claimed event; returns its new status (or DEFERRED: still PENDING, not failed)."""
    handler = handler_for(event.event_type)
    if handler is None:
        record_outcome(event, status=OutboxStatus.DEAD, error_message=f"No handler for event type {event.event_type}")
        return OutboxStatus.DEAD
    try:
        handler(event, ctx)
    except EventDeferred as deferred:
        return record_deferral(event, deferred)
    except Exception as exc:  # any failure is recorded on the event and retried later
        if ctx.email_connection is not None:
            ctx.drop_connection()
        return record_failure(event, f"{exc.__class__.__name__}: {exc}", transient=delivery_failure_is_transient(exc))
    record_sent(event)
    return OutboxStatus.SENT


def outbox_dispatch_batch(*, batch_size: int | None = None) -> dict:
    """Claim and process one batch. Returns counts by outcome."""
    events = outbox_claim(batch_size=batch_size or settings.OUTBOX_BATCH_SIZE)
    stats = {"claimed": len(events), "sent": 0, "retry": 0, "deferred": 0, "dead": 0}
    ctx = BatchContext()
    # Emails first, then document syncs (all of them brought up to date at once, then each
    # event's own handler), jobs last: an email never waits behind the documents database
    # (which may be down) or a reconciliation slice.
    syncs = [e for e in events if e.event_type == DOCUMENT_SYNC]
    jobs = [e for e in events if e.event_type == JOB_RUN]
    others = [e for e in events if e.event_type not in (DOCUMENT_SYNC, JOB_RUN)]

    def process(batch: list[OutboxEvent]) -> None:
        for event in batch:
            outcome = outbox_process(event, ctx)
            stats[{"SENT": "sent", "PENDING": "retry", DEFERRED: "deferred", "DEAD": "dead"}[outcome]] += 1

    try:
        process(others)
        sync_batch_documents(syncs, ctx)
        process(syncs)
        process(jobs)
    except DATABASE_UNAVAILABLE:
        # The main database went away mid-batch (an outcome could not be written). This worker is
        # alive: once the database answers, it hands back what it did not record instead of
        # leaving it hidden for the whole lease.
        if not database_wait(what="outbox batch"):
            raise
        _release_unrecorded(events, why="a database outage")
    except KeyboardInterrupt:
        # An operator's Ctrl-C (manage.py dispatch_outbox): the batch goes back now, not after the lease.
        try:
            _release_unrecorded(events, why="Ctrl-C")
        except Exception:  # noqa: BLE001 - the interrupt stands; the lease brings them back
            logger.warning("interrupted outbox batch not released: its events come back after the lease",
                           exc_info=True)
        raise
    finally:
        ctx.close()
    return stats


def _release_unrecorded(events: list[OutboxEvent], *, why: str) -> int:
    """Make a batch's events whose outcome was not written due again now. Only events still
    PENDING under this batch's own claim (a recorded outcome cleared it; another dispatcher that
    claimed one after the lease set its own). An email that went out but whose SENT write failed
    is sent again, with the same Message-ID (at least once, contract §6)."""
    leases = {event.claimed_until for event in events}
    with transaction.atomic():
        # Rows locked in primary-key order first, as an operator's retry of the same events
        # (ops.outbox.outbox_retry) locks them: their lease has run out by now, so one may be
        # under way, and an UPDATE alone locks in scan order (the two deadlocked).
        ids = list(OutboxEvent.objects.select_for_update().filter(
            pk__in=[event.pk for event in events], status=OutboxStatus.PENDING, claimed_until__in=leases,
        ).order_by("pk").values_list("pk", flat=True))
        released = OutboxEvent.objects.filter(pk__in=ids).update(claimed_until=None, next_attempt_at=timezone.now())
    logger.warning("outbox batch interrupted by %s: %s of its %s events released for the next dispatcher", why,
                   released, len(events))
    return released


def outbox_dispatch_run(*, max_seconds: float, batch_size: int | None = None, nudge: bool = True) -> dict:
    """What a dispatcher does (the Celery task, `manage.py dispatch_outbox`): let the next
    commit nudge again, bring back events that died only of the mail server's outage (once it
    answers), then deliver until nothing is due or `max_seconds` pass (0: one batch). `nudge`:
    see outbox_dispatch_until_empty."""
    outbox_nudge_taken()  # before claiming: events committed from now on nudge again
    revived = outbox_revive_after_outage()
    totals = outbox_dispatch_until_empty(max_seconds=max_seconds, batch_size=batch_size, nudge=nudge)
    return {**totals, "revived": revived}


def outbox_dispatch_until_empty(*, max_seconds: float = 60.0, batch_size: int | None = None,
                                nudge: bool = True) -> dict:
    """Dispatch batches (at least one) until nothing is due or the time budget is used up. A
    full batch means a backlog: it nudges once more (`nudge`), so an idle worker joins in and a
    dispatcher that runs out of time leaves the rest to the next one (with Redis the nudge is
    skipped while one is still queued, so a backlog never floods the broker). An operator's
    `dispatch_outbox` does not nudge: it keeps going itself, and with no worker running (why one
    dispatches by hand) the messages would only pile up in the broker."""
    batch_size = batch_size or settings.OUTBOX_BATCH_SIZE
    totals = {"claimed": 0, "sent": 0, "retry": 0, "deferred": 0, "dead": 0, "batches": 0}
    deadline = timezone.now() + timedelta(seconds=max_seconds)
    while True:
        stats = outbox_dispatch_batch(batch_size=batch_size)
        if not stats["claimed"]:
            break
        if nudge and stats["claimed"] == batch_size and not _eager():
            outbox_nudge()
        totals["batches"] += 1
        for key in ("claimed", "sent", "retry", "deferred", "dead"):
            totals[key] += stats[key]
        if timezone.now() >= deadline:
            break
    return totals


def _eager() -> bool:
    """CELERY_TASK_ALWAYS_EAGER: a nudge would run a nested dispatcher here (recursion)."""
    return bool(current_app.conf.task_always_eager)
