"""Background jobs (core API /jobs, /notifications, /reconciliation).

A job is created together with a JOB_RUN outbox event in one transaction, so it runs on a
worker soon after with the outbox's retry/backoff/DEAD guarantees. `job_execute` runs it at
once in the caller's request. Both paths first claim the job with one conditional UPDATE
(queued/failed → running), so a job never runs twice at the same time; a job left `running`
by a killed worker becomes claimable again after JOB_STALE_AFTER_SECONDS. Its JOB_RUN event
(whose lease is shorter) is deferred until then, so the outbox is what takes it over.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from bookings_project.errors import Conflict, NotFound

from .dispatch import EventDeferred
from .documents import ENTITY_TYPES as DOCUMENT_ENTITY_TYPES
from .emails import email_send
from .models import Job, JobStatus, JobType
from .outbox import JOB_RUN, outbox_enqueue

ENTITY_TYPES = {"item": "item", "launch": "item", "booking": "booking"}


class JobFailed(Exception):
    """The job ran and failed; the outbox retries it with backoff."""


def _job_create(*, type: str, params: dict, actor=None) -> Job:
    with transaction.atomic():
        job = Job.objects.create(type=type, params=params, created_by=actor)
        outbox_enqueue(event_type=JOB_RUN, payload={"jobId": str(job.pk)})
    return job


def job_create_notification(*, recipient_email: str, subject: str = "", message: str = "",
                            template: str = "GENERIC", data: dict | None = None, actor=None) -> Job:
    params = {"template": template, "recipientEmail": recipient_email, "subject": subject,
              "message": message, "data": data or {}}
    return _job_create(type=JobType.NOTIFICATION, params=params, actor=actor)


def job_create_reconciliation(*, entity_type: str, entity_id=None, actor=None, trigger: str = "api") -> Job:
    params = {"entityType": entity_type, "entityId": None if entity_id in (None, "") else str(entity_id),
              "trigger": trigger}
    return _job_create(type=JobType.RECONCILIATION, params=params, actor=actor)


def reconciliation_schedule_all() -> list[Job]:
    """Beat: a full reconciliation of every entity type."""
    return [job_create_reconciliation(entity_type=t, trigger="schedule") for t in DOCUMENT_ENTITY_TYPES]


def stale_after() -> timedelta:
    return timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)


def claim(job_id) -> bool:
    """Atomically move a queued/failed (or stale running) job to running; False if not claimable."""
    now = timezone.now()
    claimable = Q(status__in=[JobStatus.QUEUED, JobStatus.FAILED]) | Q(
        status=JobStatus.RUNNING, started_at__lt=now - stale_after())
    return bool(Job.objects.filter(claimable, pk=job_id).update(
        status=JobStatus.RUNNING, started_at=now, updated_at=now, completed_at=None,
        attempts=F("attempts") + 1))


def _perform(job: Job) -> dict:
    params = job.params
    if job.type == JobType.NOTIFICATION:
        context = {"subject": params.get("subject", ""), "message": params.get("message", ""),
                   "data": params.get("data", {}), **params.get("data", {}), "reference": str(job.pk)}
        email_send(template=params.get("template", "GENERIC"), recipient=params["recipientEmail"],
                   context=context, stable_id=str(job.pk))
        return {}
    if job.type == JobType.RECONCILIATION:
        from .reconciliation import reconcile

        return reconcile(job=job, entity_type=ENTITY_TYPES[params["entityType"]], entity_id=params.get("entityId"),
                         label=params["entityType"])
    raise JobFailed(f"Unknown job type {job.type}")


def job_finish(job: Job, *, result: dict | None = None, error: Exception | None = None) -> Job:
    """Record a claimed job's outcome: completed with its result, or failed with the error."""
    now = timezone.now()
    if error is not None:
        changes = {"status": JobStatus.FAILED, "error_message": f"{error.__class__.__name__}: {error}"[:2000]}
    else:
        changes = {"status": JobStatus.COMPLETED, "result": result or {}, "error_message": ""}
    Job.objects.filter(pk=job.pk).update(completed_at=now, updated_at=now, **changes)
    job.refresh_from_db()
    return job


def _run_claimed(job_id) -> Job:
    job = Job.objects.get(pk=job_id)
    try:
        result = _perform(job)
    except Exception as exc:  # recorded on the job; the caller decides whether to retry
        return job_finish(job, error=exc)
    return job_finish(job, result=result)


def _defer_while_running(job_id) -> None:
    """The job is running elsewhere, or its worker died: raise EventDeferred so the outbox
    comes back just after it becomes stale (and claimable) instead of dropping the event."""
    job = Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).only("started_at").first()
    if job is not None and job.started_at is not None:
        stale_at = job.started_at + stale_after() + timedelta(seconds=1)  # claim() needs strictly older
        raise EventDeferred(f"job {job_id} is running since {job.started_at.isoformat()}; "
                            "tried again when a run that old counts as stale (its worker died)", until=stale_at)


def job_run(*, job_id) -> Job | None:
    """Outbox handler: run the job unless it already ran; a job running elsewhere defers the
    event until it is stale; a failure raises so the outbox retries it with backoff."""
    if not claim(job_id):
        _defer_while_running(job_id)
        return None  # completed (or gone): nothing left to do
    job = _run_claimed(job_id)
    if job.status == JobStatus.FAILED:
        raise JobFailed(job.error_message)
    return job


def job_execute(*, job_id) -> Job:
    """PUT /jobs/{id}/execute: run a queued or failed job now and return its final state."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound("Job not found")
    if not claim(job_id):
        job.refresh_from_db()
        raise Conflict(f"Job is {job.status}; only queued or failed jobs can be executed")
    return _run_claimed(job_id)
