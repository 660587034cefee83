"""Outbox claims: a dispatcher takes due events for one lease, then writes each one's outcome.

Claiming is a short transaction that pushes the claimed events' `next_attempt_at` one lease
into the future (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent dispatchers
never claim the same event; SQLite serialises writers). No lock is held while an email is
sent. Every outcome is written only while the dispatcher still holds the event
(`claimed_until`), so a dispatcher whose lease ran out never overwrites a newer holder's
outcome. A failed event is retried with exponential backoff and becomes DEAD after
OUTBOX_MAX_RETRIES failures.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .exceptions import EventDeferred
from .models import OutboxEvent, OutboxStatus

logger = logging.getLogger(__name__)

BACKOFF_CAP = timedelta(hours=1)
# outbox_process outcome (not a status): the event stays PENDING, waiting rather than failed.
DEFERRED = "DEFERRED"
# A deferral never makes the event due at once (the same dispatcher run would claim it again).
MIN_DEFERRAL = timedelta(seconds=1)


def backoff(retry_count: int) -> timedelta:
    # Capped before it becomes a timedelta: a failed revival probe counts an attempt past
    # OUTBOX_MAX_RETRIES (ops.revival), so a long mail outage takes retry_count past 44, where
    # the seconds no longer fit one (OverflowError, which stopped every dispatcher run).
    seconds = settings.OUTBOX_RETRY_BASE_SECONDS * 2 ** min(max(0, retry_count - 1), 64)
    return timedelta(seconds=min(seconds, BACKOFF_CAP.total_seconds()))


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


def fresh_attempts(now: datetime) -> dict:
    """How a revived event is written: due now, a full set of attempts, held by no dispatcher."""
    return {"status": OutboxStatus.PENDING, "retry_count": 0, "next_attempt_at": now, "claimed_until": None,
            "transient_failure": False}
