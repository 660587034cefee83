"""Mail-server outages end on their own: DEAD events that failed only on the server's passing
trouble (`transient_failure`) go out again once it is seen delivering (ops.dispatch runs this
before each dispatch)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from bookings_project.text import error_line

from .claims import fresh_attempts, record_failure, record_outcome, record_sent
from .emails import EMAIL_EVENT_TYPES, delivery_failure_is_transient
from .exceptions import EventDeferred
from .handlers import MAIL_REST, BatchContext, handler_for
from .jobs import job_run, job_sends_email
from .models import JobStatus, OutboxEvent, OutboxStatus
from .outbox import JOB_RUN, RETRY_CHUNK

logger = logging.getLogger(__name__)

SMTP_PROBE_KEY = "outbox:smtp-probe"
# Waiting events with nothing left to send one probe may go through before it stops (each costs
# two or three queries, no contact with the mail server).
NOTHING_TO_SEND_PER_PROBE = 100
# Waiting events a probe looks through for one that sends an email (a job lookup per job run).
PROBE_CANDIDATES_LOOKED_AT = 200


def outbox_revive_after_outage(*, probe_every: int = 30) -> int:
    """DEAD events that failed only on the mail server's passing trouble go out again on their
    own once it delivers: at most every `probe_every` seconds (across processes, through the
    shared cache) one of them is sent as a probe. A connection that opens is no evidence (a
    server may accept connections and hang at DATA, or answer 451 to every message: reviving on
    it made events cycle DEAD → revived → DEAD, their retry history reset each time); a message
    delivered is. Then the others get a fresh set of attempts. Returns how many went out again
    (the probe included)."""
    waiting = OutboxEvent.objects.filter(status=OutboxStatus.DEAD, transient_failure=True)
    if not waiting.exists() or not cache.add(SMTP_PROBE_KEY, 1, timeout=probe_every):
        return 0
    # One that turns out to have nothing to send (a reminder of a booking cancelled since) never
    # reached the server: the next one is tried in the same turn, not a turn (30 s) later each.
    for _ in range(NOTHING_TO_SEND_PER_PROBE):
        probe = _probe_claim(waiting)
        if probe is None:
            return 0
        delivered = _probe_delivers(probe)
        if delivered is not None:
            break
    if not delivered:
        return 0
    MAIL_REST.end()  # the revived events go out now, not after this process's rest
    revived = _revive(waiting)
    logger.warning("mail server delivers again (event %s went out): %s DEAD events revived", probe.pk, revived)
    return revived + 1


def _revive(waiting) -> int:
    """Give the waiting events a fresh set of attempts, RETRY_CHUNK per transaction, each
    chunk's rows locked in primary-key order first, as an operator's retry (ops.outbox.outbox_retry)
    locks them: one UPDATE locked them in the order it scanned them, and deadlocked with a retry
    of the same events (PostgreSQL aborted one: the admin's action or this run). Keyset paging:
    one that fails again meanwhile is not revived twice in this run."""
    now, revived, last = timezone.now(), 0, None
    while True:
        chunk = waiting if last is None else waiting.filter(pk__gt=last)
        with transaction.atomic():
            ids = list(chunk.select_for_update().order_by("pk").values_list("pk", flat=True)[:RETRY_CHUNK])
            if not ids:
                return revived
            revived += OutboxEvent.objects.filter(pk__in=ids).update(**fresh_attempts(now))
        last = ids[-1]


def _probe_claim(waiting) -> OutboxEvent | None:
    """Claim, like a batch would, the waiting email (or notification job) whose retry would have
    been due first: probes take turns, so one message the server refuses for its own reasons
    (a full mailbox) does not keep the others DEAD. Only events that send an email can prove the
    server delivers: a reconciliation's JOB_RUN proves nothing."""
    candidates = waiting.filter(event_type__in=[*EMAIL_EVENT_TYPES, JOB_RUN]).order_by("next_attempt_at", "created_at")
    # However many reconciliation runs (which never send) wait ahead, the probe goes past them
    # to an email (it looked at five only: six runs first, and no probe ever ran).
    for probe in candidates[:PROBE_CANDIDATES_LOOKED_AT].iterator():
        if probe.event_type == JOB_RUN and not job_sends_email(probe.payload.get("jobId")):
            continue
        lease_end = timezone.now() + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
        if OutboxEvent.objects.filter(pk=probe.pk, status=OutboxStatus.DEAD, transient_failure=True).update(
                status=OutboxStatus.PENDING, next_attempt_at=lease_end, claimed_until=lease_end):
            probe.status, probe.next_attempt_at, probe.claimed_until = OutboxStatus.PENDING, lease_end, lease_end
            return probe
    return None


def _probe_delivers(probe: OutboxEvent) -> bool | None:
    """Send the probe; True only if a message was handed to the server just now. Failing (False),
    it is DEAD again with the attempt counted (its retry_count goes past OUTBOX_MAX_RETRIES: its
    history is kept) and why it failed. None when it had nothing left to send: a notification
    job that someone already ran (PUT /jobs/{id}/execute), a password reset email whose account
    is gone since, a reminder of a booking cancelled, moved or started since: its event is done,
    but that is no evidence either way."""
    ctx = BatchContext(mail_down="")  # (the probe tries even while this process leaves the server alone)
    try:
        if probe.event_type == JOB_RUN:
            ran = job_run(job_id=probe.payload["jobId"])
            delivered = None if ran is None else ran.status == JobStatus.COMPLETED
        else:
            handler_for(probe.event_type)(probe, ctx)
            delivered = ctx.sent_on_connection > 0 or None
    except EventDeferred:  # its job is running elsewhere: no evidence either way
        record_outcome(probe, status=OutboxStatus.DEAD)
        return False
    except Exception as exc:  # noqa: BLE001 - still not delivering: the next probe tries another
        record_failure(probe, f"{exc.__class__.__name__}: {exc}", transient=delivery_failure_is_transient(exc),
                       dead=True)
        logger.info("mail server still not delivering (probe %s: %s: %s); DEAD events wait for it",
                    probe.pk, exc.__class__.__name__, error_line(exc))
        return False
    finally:
        ctx.close()
    record_sent(probe)
    return delivered
