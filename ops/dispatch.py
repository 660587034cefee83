"""Outbox dispatcher: claims due events, runs each event's handler, records the outcome.

Claiming is a short transaction that pushes the claimed events' `next_attempt_at` one lease
into the future (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent dispatchers
never claim the same event; SQLite serialises writers). No lock is held while an email is
sent. A dispatcher that dies mid-batch loses nothing: its unfinished events become due again
when the lease runs out. A failed event is retried with exponential backoff and becomes DEAD
after OUTBOX_MAX_RETRIES failures; `outbox_retry` revives DEAD events. Every outcome is written
only while the dispatcher still holds the event (`claimed_until`), so a dispatcher whose lease
ran out never overwrites a newer holder's outcome. A handler that cannot
act yet without having failed (a job another worker still holds) raises EventDeferred: the
event waits until then, without using up an attempt.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from bookings_project.db import DATABASE_UNAVAILABLE
from bookings_project.text import error_line

from .emails import EMAIL_TEMPLATES, delivery_failure_is_transient, email_send, mail_server_failing
from .models import OutboxEvent, OutboxStatus
from .outages import database_wait
from .outbox import DOCUMENT_SYNC, JOB_RUN, outbox_nudge

logger = logging.getLogger(__name__)

BACKOFF_CAP = timedelta(hours=1)
# outbox_process outcome (not a status): the event stays PENDING, waiting rather than failed.
DEFERRED = "DEFERRED"
# A deferral never makes the event due at once (the same dispatcher run would claim it again).
MIN_DEFERRAL = timedelta(seconds=1)
# A document sync that could not reach its database tries again after this (no attempt counted).
DOCUMENTS_RETRY = timedelta(seconds=30)
# So does an email whose batch found the mail server failing (another email met it first).
EMAIL_RETRY = timedelta(seconds=30)


class EventDeferred(Exception):
    """A handler's "not yet": the event is tried again at `until` without counting a failure
    (a job left `running` by a worker that may have died can only be taken over once stale)."""

    def __init__(self, reason: str, *, until: datetime):
        super().__init__(reason)
        self.until = until


@dataclass
class BatchContext:
    """Per-batch resources shared by handlers (one SMTP connection per batch), and the documents
    this batch has already brought up to date."""

    email_connection: object = None
    sent_on_connection: int = 0  # emails the current connection delivered
    synced: set = field(default_factory=set)
    # Set when a database a document sync needs could not be reached: the batch's remaining
    # syncs are deferred at once instead of each waiting out the connection pool's timeout.
    documents_down: bool = False
    # Why an email of this batch failed on the mail server as a whole (unreachable, timed out, a
    # 4xx): the batch's other emails are deferred at once instead of each waiting out EMAIL_TIMEOUT.
    mail_down: str = ""
    # Until when (time.monotonic()) a long job of this batch may run before it pauses (ops.jobs).
    job_deadline: float = field(default_factory=lambda: time.monotonic() + settings.JOB_SLICE_SECONDS)

    def smtp(self):
        if self.email_connection is None:
            self.email_connection = get_connection(fail_silently=False)
        return self.email_connection

    def close(self):
        if self.email_connection is not None:
            try:
                self.email_connection.close()
            except Exception:  # closing a broken connection must not mask the batch result
                logger.debug("closing the email connection failed", exc_info=True)

    def drop_connection(self):
        """After a failure: the next email gets a fresh connection."""
        self.close()
        self.email_connection, self.sent_on_connection = None, 0


def _defer_email(ctx: BatchContext) -> EventDeferred:
    return EventDeferred(f"mail server failing for an earlier email of this batch: {ctx.mail_down}",
                         until=timezone.now() + EMAIL_RETRY)


def _send_email(event: OutboxEvent, ctx: BatchContext) -> None:
    if not event.recipient_email:
        raise ValueError("event has no recipient")
    if ctx.mail_down:  # not tried, so no attempt used up: only an email that met the failure pays
        raise _defer_email(ctx)
    context = {**event.payload, "reference": str(event.id), "data": event.payload.get("data", {})}
    try:
        email_send(template=event.event_type, recipient=event.recipient_email, context=context,
                   stable_id=str(event.id), issued_at=event.created_at, connection=ctx.smtp())
    except Exception as exc:
        # A connection that already delivered may just have been dropped (an idle timeout, a
        # per-connection limit): the next email tries a fresh one. A fresh one failing is the server.
        if mail_server_failing(exc) and not ctx.sent_on_connection:
            ctx.mail_down = f"{exc.__class__.__name__}: {error_line(exc)}"
        raise
    ctx.sent_on_connection += 1


def _defer_documents(reason: str) -> EventDeferred:
    return EventDeferred(f"database unavailable for document sync: {reason}",
                         until=timezone.now() + DOCUMENTS_RETRY)


def _sync_documents(event: OutboxEvent, ctx: BatchContext) -> None:
    if ctx.documents_down:
        raise _defer_documents("an earlier sync of this batch could not reach it")
    try:
        _sync_event_documents(event, ctx)
    except DATABASE_UNAVAILABLE as exc:  # an outage, not the event's fault: no attempt used up
        ctx.documents_down = True
        raise _defer_documents(error_line(exc)) from exc


def _sync_event_documents(event: OutboxEvent, ctx: BatchContext) -> None:
    from .documents import RELATED_DOCUMENTS, document_sync, document_sync_related

    for entity_type, entity_id in event.payload.get("entities", []):
        # Once per batch is enough: every change whose event is in this batch committed before
        # the batch was claimed, so the first sync already read it (a hot item's document is
        # not re-projected once per booking).
        key = (entity_type, str(entity_id))
        if key in ctx.synced:
            continue
        if entity_type in RELATED_DOCUMENTS:
            document_sync_related(related=entity_type, owner_id=entity_id)
        else:
            document_sync(entity_type=entity_type, entity_id=entity_id)
        ctx.synced.add(key)


def _sync_batch_documents(events: list[OutboxEvent], ctx: BatchContext) -> None:
    """Bring every document the batch's DOCUMENT_SYNC events name up to date at once: one
    locked repair per entity type (documents.document_repair_many) instead of one per document.
    If it fails, nothing is marked synced and each event's own handler tries (and records its
    failure) as usual."""
    from .documents import ENTITY_TYPES, document_repair_many

    wanted: dict[str, set[str]] = {}
    for event in events:
        if event.event_type == DOCUMENT_SYNC:
            for entity_type, entity_id in event.payload.get("entities", []):
                if entity_type in ENTITY_TYPES:
                    wanted.setdefault(entity_type, set()).add(str(entity_id))
    for entity_type, ids in wanted.items():
        try:
            document_repair_many(entity_type, ids)
        except DATABASE_UNAVAILABLE:
            logger.warning("batched sync of %s %s documents: database unavailable; deferring the batch's syncs",
                           len(ids), entity_type)
            ctx.documents_down = True
            return
        except Exception:  # noqa: BLE001 - the per-event handlers retry and record it
            logger.warning("batched sync of %s %s documents failed; syncing one by one", len(ids), entity_type,
                           exc_info=True)
            continue
        ctx.synced.update((entity_type, entity_id) for entity_id in ids)


def _run_job(event: OutboxEvent, ctx: BatchContext) -> None:
    from .jobs import JobFailed, job_run, job_sends_email

    job_id = event.payload["jobId"]
    if ctx.mail_down and job_sends_email(job_id):
        raise _defer_email(ctx)
    try:
        job_run(job_id=job_id, deadline=ctx.job_deadline)
    except JobFailed as failed:
        if failed.mail_server_failing:
            ctx.mail_down = str(failed)
        raise


def _bump_catalog_version(event: OutboxEvent, ctx: BatchContext) -> None:
    from catalog.cache import catalog_version_bump

    catalog_version_bump()


def handler_for(event_type: str):
    from catalog.cache import CACHE_BUMP_EVENT

    if event_type in EMAIL_TEMPLATES:
        return _send_email
    return {DOCUMENT_SYNC: _sync_documents, JOB_RUN: _run_job,
            CACHE_BUMP_EVENT: _bump_catalog_version}.get(event_type)


def backoff(retry_count: int) -> timedelta:
    seconds = settings.OUTBOX_RETRY_BASE_SECONDS * 2 ** max(0, retry_count - 1)
    return min(timedelta(seconds=seconds), BACKOFF_CAP)


def outbox_claim(*, batch_size: int, now: datetime | None = None) -> list[OutboxEvent]:
    now = now or timezone.now()
    lease_end = now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
    with transaction.atomic():
        due = OutboxEvent.objects.filter(status=OutboxStatus.PENDING, next_attempt_at__lte=now)
        due = due.order_by("next_attempt_at", "created_at")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        events = list(due[:batch_size])
        if events:
            OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(
                next_attempt_at=lease_end, claimed_until=lease_end)
    for event in events:
        event.next_attempt_at = event.claimed_until = lease_end
    return events


def record_outcome(event: OutboxEvent, **outcome) -> bool:
    """Write a claimed event's outcome, unless this dispatcher no longer holds it: its lease ran
    out and another dispatcher claimed it, or an operator revived it (the newer holder's outcome
    stands). False when nothing was written."""
    written = OutboxEvent.objects.filter(pk=event.pk, claimed_until=event.claimed_until).update(
        claimed_until=None, **outcome)
    if not written:
        logger.warning("outbox event %s (%s): outcome not recorded, the event was claimed again after this "
                       "dispatcher's lease", event.pk, event.event_type)
    return bool(written)


def record_sent(event: OutboxEvent) -> None:
    record_outcome(event, status=OutboxStatus.SENT, processed_at=timezone.now(), error_message="")


def record_failure(event: OutboxEvent, error: str, *, transient: bool = False, dead: bool = False) -> str:
    """One more failed attempt: PENDING with backoff, or DEAD after OUTBOX_MAX_RETRIES (or at
    once with `dead`: a failed revival probe, ops.revival)."""
    retry_count = event.retry_count + 1
    dead = dead or retry_count >= settings.OUTBOX_MAX_RETRIES
    status = OutboxStatus.DEAD if dead else OutboxStatus.PENDING
    if record_outcome(event, status=status, retry_count=retry_count, error_message=error[:2000],
               next_attempt_at=timezone.now() + backoff(retry_count), transient_failure=transient):
        log = logger.error if dead else logger.warning
        log("outbox event %s (%s) failed, attempt %s/%s: %s", event.pk, event.event_type, retry_count,
            settings.OUTBOX_MAX_RETRIES, error)
    return status


def record_deferral(event: OutboxEvent, deferred: EventDeferred) -> str:
    until = max(deferred.until, timezone.now() + MIN_DEFERRAL)
    if record_outcome(event, next_attempt_at=until, error_message=f"Deferred until {until.isoformat()}: {deferred}"[:2000]):
        logger.info("outbox event %s (%s) deferred until %s: %s", event.pk, event.event_type, until.isoformat(),
                    deferred)
    return DEFERRED


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
        _sync_batch_documents(syncs, ctx)
        process(syncs)
        process(jobs)
    except DATABASE_UNAVAILABLE:
        # The main database went away mid-batch (an outcome could not be written). This worker is
        # alive: once the database answers, it hands back what it did not record instead of
        # leaving it hidden for the whole lease.
        if not database_wait(what="outbox batch"):
            raise
        _release_unrecorded(events)
    finally:
        ctx.close()
    return stats


def _release_unrecorded(events: list[OutboxEvent]) -> int:
    """Make a batch's events whose outcome was not written due again now. Only events still
    PENDING under this batch's own claim (a recorded outcome cleared it; another dispatcher that
    claimed one after the lease set its own). An email that went out but whose SENT write failed
    is sent again, with the same Message-ID (at least once, contract §6)."""
    leases = {event.claimed_until for event in events}
    released = OutboxEvent.objects.filter(
        pk__in=[event.pk for event in events], status=OutboxStatus.PENDING, claimed_until__in=leases,
    ).update(claimed_until=None, next_attempt_at=timezone.now())
    logger.warning("outbox batch interrupted by a database outage: %s of its %s events released for the next "
                   "dispatcher", released, len(events))
    return released


def outbox_dispatch_run(*, max_seconds: float, batch_size: int | None = None) -> dict:
    """What a dispatcher does (the Celery task, `manage.py dispatch_outbox`): let the next
    commit nudge again, bring back events that died only of the mail server's outage (once it
    answers), then deliver until nothing is due or `max_seconds` pass (0: one batch)."""
    from .outbox import outbox_nudge_taken

    from .revival import outbox_revive_after_outage

    outbox_nudge_taken()  # before claiming: events committed from now on nudge again
    revived = outbox_revive_after_outage()
    return {**outbox_dispatch_until_empty(max_seconds=max_seconds, batch_size=batch_size), "revived": revived}


def outbox_dispatch_until_empty(*, max_seconds: float = 60.0, batch_size: int | None = None) -> dict:
    """Dispatch batches (at least one) until nothing is due or the time budget is used up. A
    full batch means a backlog: it nudges once more, so an idle worker joins in and a dispatcher
    that runs out of time leaves the rest to the next one (with Redis the nudge is skipped while
    one is still queued, so a backlog never floods the broker)."""
    batch_size = batch_size or settings.OUTBOX_BATCH_SIZE
    totals = {"claimed": 0, "sent": 0, "retry": 0, "deferred": 0, "dead": 0, "batches": 0}
    deadline = timezone.now() + timedelta(seconds=max_seconds)
    while True:
        stats = outbox_dispatch_batch(batch_size=batch_size)
        if not stats["claimed"]:
            break
        if stats["claimed"] == batch_size and not _eager():
            outbox_nudge()
        totals["batches"] += 1
        for key in ("claimed", "sent", "retry", "deferred", "dead"):
            totals[key] += stats[key]
        if timezone.now() >= deadline:
            break
    return totals


def _eager() -> bool:
    """CELERY_TASK_ALWAYS_EAGER: a nudge would run a nested dispatcher here (recursion)."""
    from celery import current_app

    return bool(current_app.conf.task_always_eager)


def fresh_attempts(now: datetime) -> dict:
    """How a revived event is written: due now, a full set of attempts, held by no dispatcher."""
    return {"status": OutboxStatus.PENDING, "retry_count": 0, "next_attempt_at": now, "claimed_until": None,
            "transient_failure": False}


RETRY_CHUNK = 500  # events revived per transaction (a retry of thousands never holds their locks long)


def outbox_retry(*, event_ids, on_revived: Callable[[list[int]], None] | None = None) -> list[int]:
    """Admin action: give DEAD events, and PENDING ones waiting out a backoff (or left by a
    dispatcher that died), a fresh set of attempts, now; returns the ids revived. SENT events,
    and events a dispatcher is delivering at this moment, are left alone: reviving one of those
    would send it twice. `on_revived(ids)` runs inside each chunk's transaction (the admin's
    history): if a later chunk fails, what was revived is recorded, and nothing else."""
    now = timezone.now()
    revivable = Q(status=OutboxStatus.DEAD) | Q(status=OutboxStatus.PENDING) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
    wanted, revived = sorted(set(event_ids)), []
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
