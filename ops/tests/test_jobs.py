"""Jobs run through the outbox: a job whose worker died is taken over once stale."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F

from ops.dispatch import outbox_dispatch_until_empty
from ops.jobs import claim, job_create_notification
from ops.models import Job, JobStatus, OutboxEvent, OutboxStatus
from ops.outbox import JOB_RUN

pytestmark = pytest.mark.django_db


def job_event(job) -> OutboxEvent:
    return OutboxEvent.objects.get(event_type=JOB_RUN, payload__jobId=str(job.pk))


def age(job, event, seconds: int) -> None:
    """Move the job's start and its event's next attempt `seconds` into the past."""
    Job.objects.filter(pk=job.pk).update(started_at=F("started_at") - timedelta(seconds=seconds))
    OutboxEvent.objects.filter(pk=event.pk).update(next_attempt_at=F("next_attempt_at") - timedelta(seconds=seconds))


@pytest.fixture
def dead_worker_job():
    """A queued notification job that a worker claimed and then died running."""
    job = job_create_notification(recipient_email="customer@example.com", subject="Hi", message="Hello")
    assert claim(job.pk)
    job.refresh_from_db()
    return job


def test_event_of_a_running_job_waits_until_it_is_stale_then_runs_it(dead_worker_job, smtp_server):
    stats = outbox_dispatch_until_empty()

    event = job_event(dead_worker_job)
    stale_at = dead_worker_job.started_at + timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 1)
    assert stats["deferred"] == 1 and stats["sent"] == 0
    assert (event.status, event.retry_count, event.next_attempt_at) == (OutboxStatus.PENDING, 0, stale_at)
    assert "is running since" in event.error_message
    assert Job.objects.get(pk=dead_worker_job.pk).status == JobStatus.RUNNING and not smtp_server.messages

    age(dead_worker_job, event, settings.JOB_STALE_AFTER_SECONDS + 1)
    assert outbox_dispatch_until_empty()["sent"] == 1

    job = Job.objects.get(pk=dead_worker_job.pk)
    assert job.status == JobStatus.COMPLETED and job.attempts == 2
    assert job_event(job).status == OutboxStatus.SENT and job_event(job).error_message == ""
    assert len(smtp_server.messages) == 1


def test_deferred_event_of_a_job_that_finished_meanwhile_is_done(dead_worker_job, smtp_server):
    outbox_dispatch_until_empty()
    Job.objects.filter(pk=dead_worker_job.pk).update(status=JobStatus.COMPLETED)  # its run ended after all
    age(dead_worker_job, job_event(dead_worker_job), settings.JOB_STALE_AFTER_SECONDS + 1)

    assert outbox_dispatch_until_empty()["sent"] == 1
    assert job_event(dead_worker_job).status == OutboxStatus.SENT
    assert not smtp_server.messages
