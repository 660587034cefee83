"""Background jobs (core API /jobs, /notifications, /reconciliation).

A job is created together with a JOB_RUN outbox event in one transaction, so it runs on a
worker soon after with the outbox's retry/backoff/DEAD guarantees. `job_execute` runs it at
once in the caller's request. Both paths first claim the job with one conditional UPDATE
(queued/failed → running), so a job never runs twice at the same time; a job left `running`
by a killed worker becomes claimable again after JOB_STALE_AFTER_SECONDS. Its JOB_RUN event
(whose lease is shorter) is deferred until then, so the outbox is what takes it over.

A long job (a whole-type reconciliation) runs in slices: the dispatcher gives it until
JOB_SLICE_SECONDS after its batch began, then `job_pause` saves its progress and queues the next
slice's JOB_RUN in one transaction. So no task ever nears Celery's time limit or the outbox
lease, emails are not held up behind a reconciliation, and a worker that dies costs at most
one slice (the takeover resumes from the saved progress).
"""

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from bookings_project.errors import Conflict, NotFound

from .documents import ENTITY_TYPES as DOCUMENT_ENTITY_TYPES
from .emails import delivery_failure_is_transient, email_send, mail_server_failing
from .exceptions import EventDeferred, JobFailed
from .models import Job, JobStatus, JobType
from .outages import database_retry
from .outbox import JOB_RUN, outbox_enqueue

logger = logging.getLogger(__name__)

ENTITY_TYPES = {"item": "item", "launch": "item", "booking": "booking"}
# A request waits less for the database than a worker: it must answer inside gunicorn's timeout.
EXECUTE_DATABASE_WAIT = 5.0


def _job_create(*, type: str, params: dict, actor=None, on_worker: bool = True) -> Job:
    """A queued job and (`on_worker`) the JOB_RUN event that runs it soon; without it the job is
    created `running`, its first run being its creator's (a shell's `manage.py reconcile`): no
    moment where a worker or an execute could take it, none where it sits queued with no one
    to run it."""
    with transaction.atomic():
        now = timezone.now()  # a new job was last updated when it was created
        run_here = {} if on_worker else {"status": JobStatus.RUNNING, "started_at": now, "attempts": 1}
        job = Job.objects.create(type=type, params=params, created_by=actor, created_at=now, updated_at=now,
                                 **run_here)
        if on_worker:
            outbox_enqueue(event_type=JOB_RUN, payload={"jobId": str(job.pk)})
    return job


def job_create_notification(*, recipient_email: str, subject: str = "", message: str = "",
                            template: str = "GENERIC", data: dict | None = None, actor=None) -> Job:
    params = {"template": template, "recipientEmail": recipient_email, "subject": subject,
              "message": message, "data": data or {}}
    return _job_create(type=JobType.NOTIFICATION, params=params, actor=actor)


def job_create_reconciliation(*, entity_type: str, entity_id=None, actor=None, trigger: str = "api",
                              on_worker: bool = True) -> Job:
    params = {"entityType": entity_type, "entityId": None if entity_id in (None, "") else str(entity_id),
              "trigger": trigger}
    return _job_create(type=JobType.RECONCILIATION, params=params, actor=actor, on_worker=on_worker)


def job_create(*, job_type: str, notification: dict | None = None, reconciliation: dict | None = None,
               actor) -> Job:
    """POST /jobs: a job of `job_type` from its own section of the request, named like the job's
    params (`notification`: recipientEmail, subject, message; `reconciliation`: entityType and
    an optional entityId)."""
    if job_type == JobType.NOTIFICATION:
        return job_create_notification(recipient_email=notification["recipientEmail"],
                                       subject=notification["subject"], message=notification["message"], actor=actor)
    return job_create_reconciliation(entity_type=reconciliation["entityType"],
                                     entity_id=reconciliation.get("entityId"), actor=actor)


def reconciliation_schedule_all() -> list[Job]:
    """Beat: a full reconciliation of every entity type whose scheduled run is not still under
    way. Two beats (a misconfigured deploy), a nightly task delivered twice, or a run that outlasted
    the night would otherwise start a second whole pass over the same documents beside the first:
    twice the load, never a better result. A run under way is a scheduled job running that showed
    a sign of life within JOB_STALE_AFTER_SECONDS, or one (queued, failed, paused) whose JOB_RUN
    event is still pending: the outbox will run it, however long the workers were down or behind.
    One left behind by a dead worker or a lost event does not hold the night's run back."""
    with transaction.atomic():  # all or none: a retried nightly task never doubles a type's job
        _lock_scheduling()
        from .models import OutboxEvent, OutboxStatus

        to_be_run = [job_id for job_id in OutboxEvent.objects.filter(
            status=OutboxStatus.PENDING, event_type=JOB_RUN).values_list("payload__jobId", flat=True) if job_id]
        alive = Q(status=JobStatus.RUNNING, updated_at__gte=timezone.now() - job_stale_after()) | Q(
            status__in=[JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED], pk__in=to_be_run)
        under_way = set(Job.objects.filter(alive, type=JobType.RECONCILIATION, params__trigger="schedule")
                        .values_list("params__entityType", flat=True))
        for entity_type in sorted(under_way):
            logger.warning("nightly reconciliation of %s not scheduled: the last scheduled run is still under way",
                           entity_type)
        return [job_create_reconciliation(entity_type=t, trigger="schedule")
                for t in DOCUMENT_ENTITY_TYPES if t not in under_way]


def _lock_scheduling() -> None:
    """Serialize reconciliation_schedule_all's transactions (two beats send it at the same
    second): a PostgreSQL transaction-scoped advisory lock; SQLite's IMMEDIATE transactions
    already admit one writer at a time."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended('ops.reconciliation_schedule_all', 0))")


def job_stale_after() -> timedelta:
    return timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)


def job_claim(job_id) -> bool:
    """Atomically move a queued/failed (or stale running) job to running; False if not claimable.
    A running job is stale when it showed no sign of life (a slice starting, a batch done) for
    JOB_STALE_AFTER_SECONDS, far longer than a slice may take: its worker died, or (paused) its
    next slice's event never ran. A takeover resumes from the progress the job saved."""
    now = timezone.now()
    claimable = Q(status__in=[JobStatus.QUEUED, JobStatus.FAILED]) | Q(
        status=JobStatus.RUNNING, updated_at__lt=now - job_stale_after())
    return bool(Job.objects.filter(claimable, pk=job_id).update(
        status=JobStatus.RUNNING, started_at=now, updated_at=now, completed_at=None, paused_at=None,
        attempts=F("attempts") + 1))


def job_claim_next_slice(job_id) -> bool:
    """Atomically take a paused job's next slice (one taker, however often its event is delivered)."""
    return bool(Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, paused_at__isnull=False).update(
        paused_at=None, updated_at=timezone.now()))


def _perform(job: Job, deadline: float | None = None) -> dict:
    params = job.params
    if job.type == JobType.NOTIFICATION:
        data = params.get("data", {})
        # `data` is listed in the email under the message; subject and message are shown once.
        context = {**data, "subject": params.get("subject", ""), "message": params.get("message", ""),
                   "data": {key: value for key, value in data.items() if key not in ("subject", "message")},
                   "reference": str(job.pk)}
        email_send(template=params.get("template", "GENERIC"), recipient=params["recipientEmail"],
                   context=context, stable_id=str(job.pk), issued_at=job.created_at)
        return {}
    if job.type == JobType.RECONCILIATION:
        from . import reconciliation

        progress = job.result if "cursor" in (job.result or {}) else None  # a paused (or interrupted) run
        return reconciliation.reconciliation_run(
            job=job, entity_type=ENTITY_TYPES[params["entityType"]], entity_id=params.get("entityId"),
            label=params["entityType"], batch_size=reconciliation.BATCH_SIZE, resume=progress, deadline=deadline)
    raise JobFailed(f"Unknown job type {job.type}")


def _update_own_run(job: Job, **changes) -> bool:
    """Write to the job only if this run still owns it: a run taken over as stale (its worker
    was only slow) must not overwrite the newer run's progress or outcome. `attempts` counts
    claims, so it names the run. False (and logged) if it was taken over."""
    if Job.objects.filter(pk=job.pk, attempts=job.attempts).update(**changes):
        return True
    logger.warning("job %s was taken over by a newer run; this run's writes are dropped", job.pk)
    return False


def job_finish(job: Job, *, result: dict | None = None, error: Exception | None = None) -> Job:
    """Record a claimed job's outcome: completed with its result, or failed with the error."""
    now = timezone.now()
    if error is not None:
        changes = {"status": JobStatus.FAILED, "error_message": f"{error.__class__.__name__}: {error}"[:2000]}
    else:
        changes = {"status": JobStatus.COMPLETED, "result": result or {}, "error_message": ""}
    _update_own_run(job, completed_at=now, updated_at=now, **changes)
    job.refresh_from_db()
    return job


def job_pause(job: Job, progress: dict) -> Job:
    """Save a long job's progress and queue its next slice, in one transaction: the job stays
    `running` and no slice is ever lost or run twice (job_claim_next_slice)."""
    now = timezone.now()
    with transaction.atomic():
        if _update_own_run(job, result=progress, paused_at=now, updated_at=now):
            outbox_enqueue(event_type=JOB_RUN, payload={"jobId": str(job.pk)})
    job.refresh_from_db()
    return job


def _run_claimed(job_id, *, deadline: float | None = None,
                 database_wait: float | None = None) -> tuple[Job, JobFailed | None]:
    """Run a claimed job (its next slice, when it is long and `deadline` comes first): the job
    as recorded, and how it failed if it did. Its outcome is written through a database outage
    of up to `database_wait` seconds (ops.outages.DATABASE_WAIT_SECONDS): this run is alive, so
    the job must not stay `running` until it counts as stale."""

    def recorded(write, what):
        return database_retry(write, what=f"job {job_id}: {what}", max_seconds=database_wait)

    job = recorded(lambda: Job.objects.get(pk=job_id), "reading the job")
    try:
        result = _perform(job, deadline)
    except Exception as exc:  # recorded on the job; the caller decides whether to retry
        job = recorded(partial(job_finish, job, error=exc), "recording its failure")
        if job.status != JobStatus.FAILED:  # taken over meanwhile: the newer run's outcome stands
            return job, None
        # (only an email job's failure can be the mail server's: a reconciliation's timeout is not)
        failure = JobFailed(job.error_message, transient=delivery_failure_is_transient(exc),
                            mail_server_failing=job.type == JobType.NOTIFICATION and mail_server_failing(exc))
        failure.__cause__ = exc
        return job, failure
    if "cursor" in result:
        return recorded(partial(job_pause, job, result), "saving its progress"), None
    return recorded(partial(job_finish, job, result=result), "recording its result"), None


def job_sends_email(job_id) -> bool:
    """Whether running the job sends an email (a notification job)."""
    return Job.objects.filter(pk=job_id, type=JobType.NOTIFICATION).exists()


def _defer_while_running(job_id) -> None:
    """The job is running elsewhere, or its worker died: raise EventDeferred so the outbox
    comes back just after it becomes stale (and claimable) instead of dropping the event."""
    job = Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).only("updated_at").first()
    if job is not None:
        stale_at = job.updated_at + job_stale_after() + timedelta(seconds=1)  # job_claim() needs strictly older
        raise EventDeferred(f"job {job_id} is running since {job.updated_at.isoformat()}; "
                            "tried again when a run that old counts as stale (its worker died)", until=stale_at)


def job_run(*, job_id, deadline: float | None = None) -> Job | None:
    """Outbox handler: run the job (or its next slice, until `deadline`) unless it already ran;
    a job running elsewhere defers the event until it is stale; a failure raises so the outbox
    retries it with backoff."""
    if not (job_claim_next_slice(job_id) or job_claim(job_id)):
        _defer_while_running(job_id)
        return None  # completed (or gone): nothing left to do
    job, failure = _run_claimed(job_id, deadline=deadline)
    if failure is not None:
        raise failure
    return job


def job_execute(*, job_id, deadline: float | None = None) -> Job:
    """PUT /jobs/{id}/execute: run a queued or failed job now and return its final state.
    `deadline` (time.monotonic()): when a long job stops here and goes on on the workers;
    JOB_EXECUTE_SECONDS from now unless given."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound("Job not found")
    if not job_claim(job_id):
        job.refresh_from_db()
        raise Conflict(f"Job is {job.status}; only queued or failed jobs can be executed")
    # A job too long for one request (a whole-type reconciliation of a large DB) answers
    # `running` after JOB_EXECUTE_SECONDS and goes on in slices on the workers.
    job, _ = _run_claimed(job_id, deadline=deadline or time.monotonic() + settings.JOB_EXECUTE_SECONDS,
                          database_wait=EXECUTE_DATABASE_WAIT)
    return job


def job_run_reconciliation_here(*, entity_type: str, entity_id=None, batch_size: int,
                                progress: Callable[[int], None] | None = None) -> Job:
    """`manage.py reconcile`: a reconciliation run in this process, recorded as a job like any
    other (readable in the admin); returns it completed or failed. No JOB_RUN event: the shell
    runs it, and a run that fails there is not re-run unattended. Every way out once the job
    exists — an error, Ctrl-C (or a signal the caller turns into KeyboardInterrupt) — finishes
    it: none is left `running` for a worker to wait out (only SIGKILL can; see OPERATIONS.md)."""
    from . import reconciliation

    job = None
    try:
        job = job_create_reconciliation(entity_type=entity_type, entity_id=entity_id, trigger="cli", on_worker=False)
        result = reconciliation.reconciliation_run(job=job, entity_type=ENTITY_TYPES[entity_type],
                                                   entity_id=entity_id, label=entity_type, batch_size=batch_size,
                                                   progress=progress)
    except (Exception, KeyboardInterrupt) as exc:
        if job is None:
            raise
        return database_retry(partial(job_finish, job, error=exc), what=f"job {job.pk}: recording its failure")
    return database_retry(partial(job_finish, job, result=result), what=f"job {job.pk}: recording its result")
