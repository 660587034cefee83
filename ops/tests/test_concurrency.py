"""Races on jobs on PostgreSQL with real threads, each on its own connection (SQLite cannot show
a race): a job is claimed by one conditional UPDATE, so it runs once however many ask at once."""

import time

import pytest

from bookings_project.testing import race
from ops.dispatch import outbox_dispatch_until_empty
from ops.models import Job, JobStatus

ALL_DBS = ["default", "documents"]
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, databases=ALL_DBS)]

NOTIFICATION_JOB = {"type": "NOTIFICATION", "notification": {
    "recipientEmail": "customer@example.com", "subject": "Booking Confirmation",
    "message": "Your booking has been confirmed."}}


@pytest.fixture
def operator_client(make_user, client_for):
    operator = make_user(roles=["IT_OPERATOR"])
    return lambda: client_for(operator)


def test_two_executes_of_one_job_at_once_are_one_200_and_one_409_and_it_runs_once(operator_client, smtp_server):
    smtp_server.delay = 0.3  # the winner is still sending when the other asks
    for round_ in range(3):
        job_id = operator_client().post("/jobs", NOTIFICATION_JOB, format="json").json()["id"]

        responses = race([lambda: operator_client().put(f"/jobs/{job_id}/execute")] * 2)

        assert sorted(r.status_code for r in responses) == [200, 409], [r.content for r in responses]
        [won] = [r.json() for r in responses if r.status_code == 200]
        assert won["status"] == "completed"
        job = Job.objects.get(pk=job_id)
        assert (job.status, job.attempts) == (JobStatus.COMPLETED, 1)
        assert smtp_server.message_ids().count(f"<{job_id}@bookings.local>") == 1
    # The jobs' own outbox events find them done and send nothing more.
    outbox_dispatch_until_empty()
    assert len(smtp_server.messages) == 3


def test_execute_racing_the_workers_run_of_the_same_job_runs_it_once(operator_client, smtp_server):
    """The job's JOB_RUN event is dispatched while an operator executes it: whichever claims it
    first runs it; the other is a 409 (execute) or defers the event until the run would be stale
    (the worker)."""
    smtp_server.delay = 0.3
    for worker_waits in (0, 0.15, 0, 0.15):  # (a head start for the execute in every other round)
        job_id = operator_client().post("/jobs", NOTIFICATION_JOB, format="json").json()["id"]

        def worker():
            time.sleep(worker_waits)
            return outbox_dispatch_until_empty()

        executed, _ = race([lambda: operator_client().put(f"/jobs/{job_id}/execute"), worker])

        assert executed.status_code in (200, 409), executed.content
        if executed.status_code == 409:  # the worker had it: still running, or done already
            assert executed.json()["error"] == "conflict"
        job = Job.objects.get(pk=job_id)
        assert (job.status, job.attempts) == (JobStatus.COMPLETED, 1)
        assert smtp_server.message_ids().count(f"<{job_id}@bookings.local>") == 1
