"""Jobs run through the outbox: a job whose worker died is taken over once stale."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F

from ops.dispatch import outbox_dispatch_until_empty
from ops.jobs import job_claim, job_create_notification
from ops.models import Job, JobStatus, OutboxEvent, OutboxStatus
from ops.outbox import JOB_RUN

pytestmark = pytest.mark.django_db


def job_event(job) -> OutboxEvent:
    return OutboxEvent.objects.get(event_type=JOB_RUN, payload__jobId=str(job.pk))


def age(job, event, seconds: int) -> None:
    """Move the job's start (and last sign of life) and its event's next attempt `seconds` into the past."""
    Job.objects.filter(pk=job.pk).update(started_at=F("started_at") - timedelta(seconds=seconds),
                                         updated_at=F("updated_at") - timedelta(seconds=seconds))
    OutboxEvent.objects.filter(pk=event.pk).update(next_attempt_at=F("next_attempt_at") - timedelta(seconds=seconds))


@pytest.fixture
def dead_worker_job():
    """A queued notification job that a worker claimed and then died running."""
    job = job_create_notification(recipient_email="customer@example.com", subject="Hi", message="Hello")
    assert job_claim(job.pk)
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


# --- long jobs run in slices ---------------------------------------------------------------


@pytest.fixture
def drifted_items(make_user):
    """Seven items whose documents all differ, and reconciliation batches of two."""
    from catalog.tests.factories import make_item
    from ops.models import Document

    organizer = make_user(roles=["EVENT_ORGANIZER"])
    items = [make_item(organizer, name=f"Item {n}") for n in range(7)]
    outbox_dispatch_until_empty()
    Document.objects.using("documents").filter(entity_type="item").update(body={"tampered": True})
    return items


@pytest.fixture
def tiny_slices(settings, monkeypatch):
    from ops import reconciliation

    monkeypatch.setattr(reconciliation, "BATCH_SIZE", 2)
    settings.JOB_SLICE_SECONDS = 0  # every slice stops after its first batch
    settings.JOB_EXECUTE_SECONDS = 0


def run_events_once() -> dict:
    from ops.dispatch import outbox_dispatch_batch

    return outbox_dispatch_batch(batch_size=1)


@pytest.mark.django_db(databases=["default", "documents"])
def test_a_whole_type_reconciliation_runs_in_slices_and_ends_like_one_run(drifted_items, tiny_slices, client_for,
                                                                           make_user):
    from ops.documents import relational_body
    from ops.jobs import job_create_reconciliation
    from ops.models import Document

    operator = client_for(make_user(roles=["IT_OPERATOR"]))
    job = job_create_reconciliation(entity_type="item")
    run_events_once()  # the first slice: one batch of two items

    paused = Job.objects.get(pk=job.pk)
    assert paused.status == JobStatus.RUNNING and paused.paused_at is not None
    shown = operator.get(f"/jobs/{job.pk}").json()
    assert shown["status"] == "running" and shown["reconciliation"]["summary"]["checked"] == 2
    assert operator.put(f"/jobs/{job.pk}/execute").status_code == 409  # it is running, in slices
    assert OutboxEvent.objects.filter(event_type=JOB_RUN, status=OutboxStatus.PENDING).count() == 1

    while Job.objects.get(pk=job.pk).status == JobStatus.RUNNING:
        assert run_events_once()["claimed"] == 1

    done = Job.objects.get(pk=job.pk)
    assert done.status == JobStatus.COMPLETED and done.attempts == 1 and done.paused_at is None
    assert done.result == {"changesLog": "Checked 7 items: 0 created, 7 updated, 0 deleted, 0 unchanged. "
                                         "Updated fields: "
                                         + ", ".join(sorted([*relational_body("item", drifted_items[0].pk), "tampered"])),
                           "summary": {"checked": 7, "created": 0, "updated": 7, "deleted": 0, "unchanged": 0}}
    assert OutboxEvent.objects.filter(event_type=JOB_RUN, payload__jobId=str(job.pk)).count() > 4  # one per slice
    for item in drifted_items:
        assert Document.objects.using("documents").get(entity_type="item", entity_id=str(item.pk)).body == \
            relational_body("item", item.pk)
    assert done.changes.filter(action="updated").values("entity_id").distinct().count() == 7


@pytest.mark.django_db(databases=["default", "documents"])
def test_execute_answers_running_when_a_job_outlasts_the_request_and_workers_finish_it(drifted_items, tiny_slices,
                                                                                       client_for, make_user):
    from ops.jobs import job_create_reconciliation

    operator = client_for(make_user(roles=["IT_OPERATOR"]))
    job = job_create_reconciliation(entity_type="item")
    response = operator.put(f"/jobs/{job.pk}/execute")
    assert response.status_code == 200 and response.json()["status"] == "running"
    assert response.json()["reconciliation"]["summary"]["checked"] == 2

    outbox_dispatch_until_empty()  # the creation event finds it paused and takes the next slice, and so on
    done = Job.objects.get(pk=job.pk)
    assert done.status == JobStatus.COMPLETED and done.result["summary"]["updated"] == 7


@pytest.mark.django_db(databases=["default", "documents"])
def test_a_slice_whose_worker_died_is_resumed_from_the_saved_progress(drifted_items, tiny_slices):
    from ops.jobs import job_create_reconciliation

    job = job_create_reconciliation(entity_type="item")
    run_events_once()  # slice 1 done and paused
    from ops.jobs import job_claim_next_slice
    assert job_claim_next_slice(job.pk)  # slice 2 taken by a worker that then dies
    event = OutboxEvent.objects.get(event_type=JOB_RUN, status=OutboxStatus.PENDING)
    assert run_events_once()["deferred"] == 1  # its event waits: the job is running

    event.refresh_from_db()
    age(Job.objects.get(pk=job.pk), event, settings.JOB_STALE_AFTER_SECONDS + 2)
    outbox_dispatch_until_empty()

    done = Job.objects.get(pk=job.pk)
    assert done.status == JobStatus.COMPLETED and done.attempts == 2
    # Resumed after the two items slice 1 repaired: nothing checked twice, nothing missed.
    assert done.result["summary"] == {"checked": 7, "created": 0, "updated": 7, "deleted": 0, "unchanged": 0}


@pytest.mark.django_db(databases=["default", "documents"])
def test_a_long_run_outside_the_workers_shows_signs_of_life(drifted_items, tiny_slices):
    """`manage.py reconcile` runs a whole type in one go: each batch refreshes the job's
    updated_at, so the job's own queued event never takes it for a dead worker's and runs it twice."""
    from ops import reconciliation
    from ops.jobs import job_create_reconciliation

    job = job_create_reconciliation(entity_type="item", trigger="cli")
    assert job_claim(job.pk)
    long_ago = Job.objects.get(pk=job.pk).updated_at - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 60)
    beats = []

    def batch_done(n):
        beats.append(Job.objects.get(pk=job.pk).updated_at)
        Job.objects.filter(pk=job.pk).update(updated_at=long_ago)  # as if the run had been going for long

    reconciliation.reconciliation_run(job=job, entity_type="item", batch_size=2, progress=batch_done)
    assert len(beats) >= 4 and all(beat > long_ago for beat in beats)


def test_the_nightly_jobs_are_created_together_or_not_at_all(monkeypatch):
    from ops import jobs

    real = jobs.job_create_reconciliation
    calls = []

    def second_fails(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real(**kwargs)

    monkeypatch.setattr(jobs, "job_create_reconciliation", second_fails)
    with pytest.raises(RuntimeError):
        jobs.reconciliation_schedule_all()
    assert not Job.objects.exists() and not OutboxEvent.objects.exists()


def scheduled_jobs():
    return sorted(Job.objects.filter(params__trigger="schedule").values_list("params__entityType", "status"))


def test_a_second_beat_starts_no_second_nightly_run_beside_one_under_way():
    """Two beats (a misconfigured deploy) each send the nightly task: the second must not start
    another whole pass over every document beside the first."""
    from ops import jobs

    first = jobs.reconciliation_schedule_all()
    assert jobs.reconciliation_schedule_all() == []
    assert scheduled_jobs() == [("booking", "queued"), ("item", "queued")]
    assert OutboxEvent.objects.filter(event_type=JOB_RUN).count() == 2

    Job.objects.filter(pk=first[0].pk).update(status=JobStatus.RUNNING)  # a slice under way: still its night
    assert jobs.reconciliation_schedule_all() == []


def test_the_next_nights_run_starts_once_the_last_finished_or_was_left_behind():
    from ops import jobs

    done, left_behind = jobs.reconciliation_schedule_all()
    Job.objects.filter(pk=done.pk).update(status=JobStatus.COMPLETED)
    Job.objects.filter(pk=left_behind.pk).update(  # its worker died: stale, and its event lost
        status=JobStatus.RUNNING, updated_at=F("updated_at") - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 1))
    OutboxEvent.objects.filter(event_type=JOB_RUN).update(status=OutboxStatus.DEAD)

    again = jobs.reconciliation_schedule_all()
    assert sorted(job.params["entityType"] for job in again) == sorted([done.params["entityType"],
                                                                       left_behind.params["entityType"]])
    other = jobs.job_create_reconciliation(entity_type="item")  # an operator's run holds nothing back
    assert other.params["trigger"] == "api"


def test_a_nightly_run_still_to_be_run_by_its_event_holds_the_next_one_back():
    """A scheduled run that no worker has taken yet (workers down or behind for longer than
    JOB_STALE_AFTER_SECONDS; a nightly task redelivered after the broker's visibility timeout,
    1 h) or one that failed and whose event retries it, still runs: a second beside it is a
    second whole pass. Only one whose event is gone (DEAD: lost) is left behind."""
    from ops import jobs

    queued, failed = jobs.reconciliation_schedule_all()
    long_ago = F("updated_at") - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 1)
    Job.objects.filter(pk=queued.pk).update(updated_at=long_ago)
    Job.objects.filter(pk=failed.pk).update(status=JobStatus.FAILED, updated_at=long_ago)
    assert jobs.reconciliation_schedule_all() == []

    OutboxEvent.objects.filter(event_type=JOB_RUN, payload__jobId=str(queued.pk)).update(status=OutboxStatus.DEAD)
    again = jobs.reconciliation_schedule_all()
    assert [job.params["entityType"] for job in again] == [queued.params["entityType"]]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_beats_at_the_same_second_schedule_one_run_per_type():
    from bookings_project.testing import race
    from ops import jobs

    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("needs PostgreSQL")
    for _ in range(5):
        Job.objects.all().delete()
        OutboxEvent.objects.all().delete()
        results = race([jobs.reconciliation_schedule_all] * 4)
        assert not [r for r in results if isinstance(r, Exception)], results
        assert scheduled_jobs() == [("booking", "queued"), ("item", "queued")]


@pytest.mark.django_db(databases=["default", "documents"])
def test_a_paused_job_whose_next_slice_event_died_is_taken_over_once_stale(drifted_items, tiny_slices, client_for,
                                                                           make_user):
    from ops.jobs import job_create_reconciliation

    operator = client_for(make_user(roles=["IT_OPERATOR"]))
    job = job_create_reconciliation(entity_type="item")
    run_events_once()
    OutboxEvent.objects.filter(event_type=JOB_RUN, status=OutboxStatus.PENDING).update(status=OutboxStatus.DEAD)
    assert operator.put(f"/jobs/{job.pk}/execute").status_code == 409  # paused moments ago: still its run's

    Job.objects.filter(pk=job.pk).update(updated_at=F("updated_at") - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 1))
    assert operator.put(f"/jobs/{job.pk}/execute").status_code == 200
    outbox_dispatch_until_empty()
    done = Job.objects.get(pk=job.pk)
    assert done.status == JobStatus.COMPLETED and done.attempts == 2
    assert done.result["summary"] == {"checked": 7, "created": 0, "updated": 7, "deleted": 0, "unchanged": 0}


def test_a_run_taken_over_as_stale_cannot_overwrite_the_newer_run(dead_worker_job):
    from ops.jobs import job_finish, job_pause

    # The first run's view of its job (two, as a run pauses or finishes, never both), whose worker was only slow.
    slow_run, slow_run_again = Job.objects.get(pk=dead_worker_job.pk), Job.objects.get(pk=dead_worker_job.pk)
    age(slow_run, job_event(slow_run), settings.JOB_STALE_AFTER_SECONDS + 1)
    assert job_claim(slow_run.pk)  # taken over
    job_pause(slow_run, {"cursor": {"phase": "rows", "after": 99}, "summary": {}})
    job_finish(slow_run_again, error=RuntimeError("late"))

    current = Job.objects.get(pk=slow_run.pk)
    assert (current.status, current.attempts, current.paused_at, current.result) == (JobStatus.RUNNING, 2, None, {})
    assert OutboxEvent.objects.filter(event_type=JOB_RUN).count() == 1  # the slow run queued no slice


def test_a_run_that_fails_after_being_taken_over_is_no_failed_attempt(monkeypatch):
    """A slow run's email fails after a newer run took the job over and completed it: its
    failure is dropped with its write, and it must not raise JobFailed either (the outbox would
    count an attempt against a completed job, with an empty error)."""
    from ops import jobs

    queued = job_create_notification(recipient_email="customer@example.com", subject="Hi", message="Hello")

    def taken_over_then_failing(job, deadline):
        age(job, job_event(job), settings.JOB_STALE_AFTER_SECONDS + 1)
        assert job_claim(job.pk)  # a newer run takes over …
        jobs.job_finish(Job.objects.get(pk=job.pk), result={})  # … and completes the job
        raise ConnectionResetError("the slow run's server went away")

    monkeypatch.setattr(jobs, "_perform", taken_over_then_failing)

    job = jobs.job_run(job_id=queued.pk)  # does not raise

    assert (job.status, job.error_message, job.attempts) == (JobStatus.COMPLETED, "", 2)


@pytest.mark.django_db(databases=["default", "documents"])
def test_a_shell_run_that_fails_is_not_rerun_by_a_worker(drifted_items, monkeypatch):
    from django.core.management import call_command
    from django.core.management.base import CommandError


    def broken(**kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr("ops.reconciliation.reconciliation_run", broken)
    with pytest.raises(CommandError, match="interrupted"):
        call_command("reconcile", "--entity-type", "item", "--no-progress")
    job = Job.objects.get(params__trigger="cli")
    assert job.status == JobStatus.FAILED
    assert not OutboxEvent.objects.filter(event_type=JOB_RUN, payload__jobId=str(job.pk)).exists()


@pytest.mark.django_db(databases=["default", "documents"])
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_shell_run_stopped_by_a_signal_ends_its_job_as_failed(drifted_items, monkeypatch, signame):
    import os
    import signal

    from django.core.management import call_command
    from django.core.management.base import CommandError


    before = signal.getsignal(getattr(signal, signame))

    def stopped(**kwargs):
        os.kill(os.getpid(), getattr(signal, signame))  # `timeout`, systemd, a dropped SSH session
        raise AssertionError("the signal should have stopped the run")

    monkeypatch.setattr("ops.reconciliation.reconciliation_run", stopped)
    with pytest.raises(CommandError, match=f"stopped by {signame}"):
        call_command("reconcile", "--entity-type", "item", "--no-progress")
    assert Job.objects.get(params__trigger="cli").status == JobStatus.FAILED
    assert signal.getsignal(getattr(signal, signame)) == before  # handlers restored


@pytest.mark.django_db(databases=["default", "documents"])
def test_a_job_hit_by_a_database_blip_ends_failed_once_it_returns_not_running_until_stale(
        drifted_items, monkeypatch, client_for, make_user):
    """The database goes away mid-run and is still away when the (live) worker records the
    failure: it waits for it and writes `failed`, so the job's event retries it as any failed job,
    and execute is allowed at once — not 409 for JOB_STALE_AFTER_SECONDS."""
    from django.db import OperationalError

    from ops import jobs, outages, reconciliation
    from ops.dispatch import outbox_dispatch_batch
    from ops.jobs import job_create_reconciliation

    monkeypatch.setattr(outages, "FIRST_PAUSE", 0)
    real_reconcile, real_update = reconciliation.reconciliation_run, jobs._update_own_run
    writes = []

    def database_restarting(**kwargs):
        raise OperationalError("terminating connection due to administrator command")

    def update_once_it_is_back(job, **changes):
        writes.append(changes.get("status"))
        if len(writes) <= 2:
            raise OperationalError("connection failed: Connection refused")
        return real_update(job, **changes)

    monkeypatch.setattr(reconciliation, "reconciliation_run", database_restarting)
    monkeypatch.setattr(jobs, "_update_own_run", update_once_it_is_back)
    job = job_create_reconciliation(entity_type="booking")

    stats = outbox_dispatch_batch()

    assert stats["retry"] == 1
    failed = Job.objects.get(pk=job.pk)
    assert failed.status == JobStatus.FAILED and "OperationalError" in failed.error_message
    assert writes == [JobStatus.FAILED] * 3
    event = job_event(job)
    assert (event.status, event.retry_count) == (OutboxStatus.PENDING, 1)

    monkeypatch.setattr(reconciliation, "reconciliation_run", real_reconcile)
    operator = client_for(make_user(roles=["IT_OPERATOR"]))
    assert operator.put(f"/jobs/{job.pk}/execute").json()["status"] == "completed"



@pytest.mark.parametrize("job_type, section, request_params, params", [
    ("NOTIFICATION", "notification", {"recipientEmail": "c@example.com", "subject": "Hi", "message": "Hello"},
     {"recipientEmail": "c@example.com", "subject": "Hi", "message": "Hello", "template": "GENERIC", "data": {}}),
    ("RECONCILIATION", "reconciliation", {"entityType": "item", "entityId": "7"},
     {"entityType": "item", "entityId": "7", "trigger": "api"}),
])
def test_job_create_queues_the_job_its_type_names_from_that_section(admin, job_type, section, request_params, params):
    from ops.jobs import job_create

    job = job_create(job_type=job_type, **{section: request_params}, actor=admin)

    assert (job.type, job.params, job.created_by, job.status) == (job_type, params, admin, JobStatus.QUEUED)
    assert job_event(job).status == OutboxStatus.PENDING
