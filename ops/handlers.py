"""What the dispatcher does with each type of outbox event (`handler_for`): send its email,
sync its documents, run its job, bump the catalog cache version. A handler raises to fail the
event (retried with backoff, ops.claims), or EventDeferred when it cannot act yet without having
failed (a job another worker still holds): the event waits until then, without using up an
attempt.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.mail import get_connection
from django.utils import timezone

from bookings_project.cache import Rest
from bookings_project.db import DATABASE_UNAVAILABLE
from bookings_project.text import error_line
from catalog.cache import CACHE_BUMP_EVENT, catalog_version_bump

from . import documents
from .emails import EMAIL_EVENT_TYPES, email_send, mail_server_failing
from .exceptions import EventDeferred, JobFailed
from .jobs import job_run, job_sends_email
from .models import OutboxEvent
from .outbox import DOCUMENT_SYNC, JOB_RUN, EventType

logger = logging.getLogger(__name__)

# A document sync that could not reach its database tries again after this (no attempt counted).
DOCUMENTS_RETRY = timedelta(seconds=30)
# So does an email whose batch found the mail server failing (another email met it first).
EMAIL_RETRY = timedelta(seconds=30)

# How long this process leaves the documents database alone after a sync found it unreachable:
# each try waits out the connection pool (DB_POOL_TIMEOUT, 10 s), and the deferred syncs, due
# again every DOCUMENTS_RETRY and older than new emails, come first in the claims — trying once
# per batch held every batch, and the emails in it, that long.
DOCUMENTS_REST = Rest(DOCUMENTS_RETRY.total_seconds())
# The same for the mail server: once an email found it failing as a whole (mail_server_failing),
# this process defers emails without trying it for EMAIL_RETRY — every batch holding an email
# paid EMAIL_TIMEOUT, and the deferred emails, due again every 30 s, come first in the claims:
# document syncs and job runs waited behind them. Events still take turns trying (one per rest),
# so each becomes DEAD after its own attempts against a server that stays dead; the revival probe
# (ops.revival) always tries, and a delivered probe ends the rest.
MAIL_REST = Rest(EMAIL_RETRY.total_seconds())


@dataclass
class BatchContext:
    """Per-batch resources shared by handlers (one SMTP connection per batch), and the documents
    this batch has already brought up to date."""

    email_connection: object = None
    sent_on_connection: int = 0  # emails the current connection delivered
    synced: set = field(default_factory=set)
    # Set when a database a document sync needs could not be reached (by this batch, or by this
    # process within DOCUMENTS_RETRY): the syncs are deferred at once instead of each batch
    # waiting out the connection pool's timeout again.
    documents_down: bool = field(default_factory=lambda: bool(DOCUMENTS_REST.reason()))
    # Why an email of this batch failed on the mail server as a whole (unreachable, timed out, a
    # 4xx): the batch's other emails are deferred at once instead of each waiting out EMAIL_TIMEOUT.
    mail_down: str = field(default_factory=MAIL_REST.reason)
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
    return EventDeferred(f"mail server failing for an earlier email of this dispatcher: {ctx.mail_down}",
                         until=timezone.now() + EMAIL_RETRY)


def _send_email(event: OutboxEvent, ctx: BatchContext) -> None:
    if not event.recipient_email:
        raise ValueError("event has no recipient")
    _deliver(event, ctx, recipient=event.recipient_email,
             context={**event.payload, "data": event.payload.get("data", {})})


def _send_password_reset(event: OutboxEvent, ctx: BatchContext) -> None:
    """The link is made now, for the account's address now (accounts.password_reset): the event holds
    no token, and no recipient of anyone's choosing."""
    from accounts.password_reset import password_reset_email_context

    _deliver_made(event, ctx, password_reset_email_context(user_id=event.payload.get("userId")),
                  unsent="the account is gone or inactive")


def _send_booking_reminder(event: OutboxEvent, ctx: BatchContext) -> None:
    """Made now, from the booking as it is (reservations.reminders): nothing goes out for a booking
    cancelled, moved or started since the reminder was queued."""
    from reservations.reminders import booking_reminder_email_context

    _deliver_made(event, ctx, booking_reminder_email_context(booking_id=event.payload.get("bookingId"),
                                                             revision=event.payload.get("revision")),
                  unsent="the booking was cancelled, moved or has started, or its account turned reminders off")


def _deliver_made(event: OutboxEvent, ctx: BatchContext, made: tuple[str, dict] | None, *, unsent: str) -> None:
    """Deliver an email made at send time — (recipient, context) — or, None, log why nothing
    went out (the event is done with either way)."""
    if made is None:
        logger.info("%s %s not sent: %s", event.event_type, event.id, unsent)
        return
    recipient, context = made
    _deliver(event, ctx, recipient=recipient, context=context)


def _deliver(event: OutboxEvent, ctx: BatchContext, *, recipient: str, context: dict) -> None:
    if ctx.mail_down:  # not tried, so no attempt used up: only an email that met the failure pays
        raise _defer_email(ctx)
    try:
        email_send(template=event.event_type, recipient=recipient, context={**context, "reference": str(event.id)},
                   stable_id=str(event.id), issued_at=event.created_at, connection=ctx.smtp())
    except Exception as exc:
        # A connection that already delivered may just have been dropped (an idle timeout, a
        # per-connection limit): the next email tries a fresh one. A fresh one failing is the server.
        if mail_server_failing(exc) and not ctx.sent_on_connection:
            ctx.mail_down = f"{exc.__class__.__name__}: {error_line(exc)}"
            MAIL_REST.start(ctx.mail_down)
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
        DOCUMENTS_REST.start()
        raise _defer_documents(error_line(exc)) from exc


def _sync_event_documents(event: OutboxEvent, ctx: BatchContext) -> None:
    for entity_type, entity_id in event.payload.get("entities", []):
        # Once per batch is enough: every change whose event is in this batch committed before
        # the batch was claimed, so the first sync already read it (a hot item's document is
        # not re-projected once per booking).
        key = (entity_type, str(entity_id))
        if key in ctx.synced:
            continue
        if entity_type in documents.RELATED_DOCUMENTS:
            documents.document_sync_related(related=entity_type, owner_id=entity_id)
        else:
            documents.document_sync(entity_type=entity_type, entity_id=entity_id)
        ctx.synced.add(key)


def sync_batch_documents(events: list[OutboxEvent], ctx: BatchContext) -> None:
    """Bring every document the batch's DOCUMENT_SYNC events name up to date at once: one
    locked repair per entity type (documents.document_repair_many) instead of one per document.
    If it fails, nothing is marked synced and each event's own handler tries (and records its
    failure) as usual."""
    if ctx.documents_down:  # found unreachable moments ago: each sync defers at once
        return
    wanted: dict[str, set[str]] = {}
    for event in events:
        if event.event_type == DOCUMENT_SYNC:
            for entity_type, entity_id in event.payload.get("entities", []):
                if entity_type in documents.ENTITY_TYPES:
                    wanted.setdefault(entity_type, set()).add(str(entity_id))
    for entity_type, ids in wanted.items():
        try:
            documents.document_repair_many(entity_type, ids)
        except DATABASE_UNAVAILABLE:
            logger.warning("batched sync of %s %s documents: database unavailable; deferring the batch's syncs",
                           len(ids), entity_type)
            ctx.documents_down = True
            DOCUMENTS_REST.start()
            return
        except Exception:  # noqa: BLE001 - the per-event handlers retry and record it
            logger.warning("batched sync of %s %s documents failed; syncing one by one", len(ids), entity_type,
                           exc_info=True)
            continue
        ctx.synced.update((entity_type, entity_id) for entity_id in ids)


def _run_job(event: OutboxEvent, ctx: BatchContext) -> None:
    job_id = event.payload["jobId"]
    if ctx.mail_down and job_sends_email(job_id):
        raise _defer_email(ctx)
    try:
        job_run(job_id=job_id, deadline=ctx.job_deadline)
    except JobFailed as failed:
        if failed.mail_server_failing:
            ctx.mail_down = str(failed)
            MAIL_REST.start(ctx.mail_down)
        raise


def _bump_catalog_version(event: OutboxEvent, ctx: BatchContext) -> None:
    catalog_version_bump()


def handler_for(event_type: str):
    if event_type == EventType.PASSWORD_RESET:
        return _send_password_reset
    if event_type == EventType.BOOKING_REMINDER:
        return _send_booking_reminder
    if event_type in EMAIL_EVENT_TYPES:
        return _send_email
    return {DOCUMENT_SYNC: _sync_documents, JOB_RUN: _run_job, CACHE_BUMP_EVENT: _bump_catalog_version}.get(event_type)
