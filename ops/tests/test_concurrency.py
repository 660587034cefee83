"""Races on PostgreSQL with real threads, each on its own connection (SQLite cannot show a race):
a job is claimed by one conditional UPDATE, so it runs once however many ask at once; two retries
of overlapping outbox events neither deadlock nor revive an event twice."""

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from bookings_project.testing import race, wait_for
from ops.dispatch import outbox_dispatch_until_empty
from ops.models import Job, JobStatus, OutboxEvent, OutboxStatus
from ops.outbox import EventType, outbox_retry

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


# How a retry's statements may read the table: in primary-key order (an index scan, the plan for
# a few events) or in the order the rows were written (a sequential scan, the plan for many).
SCANS = {"pk order": "SET enable_seqscan = off; SET enable_bitmapscan = off",
         "table order": "SET enable_indexscan = off; SET enable_bitmapscan = off"}


def blocked(pids) -> bool:
    """Every one of these backends waits for a lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM unnest(%s::int[]) AS pid WHERE cardinality(pg_blocking_pids(pid)) > 0",
                       [pids])
        return cursor.fetchone()[0] == len(pids)


def race_in_opposite_orders(pk_ordered, table_ordered, *, held_id):
    """Run two calls at once, one reading the outbox in primary-key order and one in the order
    the rows were written (SCANS), while a third session holds the event `held_id` until both
    wait for a lock — so both are half-way through when it lets go. Their results (or
    exceptions), then the holder's."""
    started, pids = threading.Barrier(3), []

    def with_scan(scan, call):
        with connection.cursor() as cursor:  # (this thread's own connection: the setting dies with it)
            cursor.execute(SCANS[scan])
            cursor.execute("SELECT pg_backend_pid()")
            pids.append(cursor.fetchone()[0])
        started.wait(timeout=30)
        return call()

    def hold_the_event():
        with transaction.atomic():
            OutboxEvent.objects.select_for_update().get(pk=held_id)
            started.wait(timeout=30)
            assert wait_for(lambda: blocked(pids), timeout=30, interval=0.02), "a statement never waited"

    return race([lambda: with_scan("pk order", pk_ordered), lambda: with_scan("table order", table_ordered),
                 hold_the_event])


def test_two_retries_over_overlapping_dead_events_neither_deadlock_nor_revive_one_twice(monkeypatch):
    """Two operators retry overlapping sets of DEAD events at once, their statements reading the
    rows in opposite orders (the events were written in descending key order). A dispatcher-like
    third session holds the event in the middle of the overlap until both wait for a lock, so
    both are half-way through when it lets go: retries that locked rows as they scanned them
    would deadlock there (PostgreSQL aborts one); locked in key order, one waits for the other."""
    monkeypatch.setattr("ops.outbox.outbox_nudge", lambda: None)  # (no dispatcher: the rows are the result)
    ids = sorted(uuid.uuid4() for _ in range(40))
    OutboxEvent.objects.bulk_create(OutboxEvent(id=pk, event_type=EventType.GENERIC, recipient_email="x@example.com",
                                                status=OutboxStatus.DEAD, retry_count=5, error_message="boom")
                                    for pk in reversed(ids))

    revived_first, revived_second, held = race_in_opposite_orders(
        lambda: outbox_retry(event_ids=ids[:30]), lambda: outbox_retry(event_ids=ids[10:]), held_id=ids[20])

    assert not [r for r in (revived_first, revived_second, held) if isinstance(r, Exception)], \
        (revived_first, revived_second, held)
    assert sorted(revived_first + revived_second) == ids  # each event once: none twice, none left
    assert set(OutboxEvent.objects.values_list("status", "retry_count", "error_message")) == {
        (OutboxStatus.PENDING, 0, "")}


def test_an_operators_retry_racing_the_revival_after_a_mail_outage_neither_deadlocks(monkeypatch):
    """The mail server is back: a dispatcher's probe got through and it revives every event
    that died of the outage, while an operator retries the same DEAD events from the admin.
    Their statements read the rows in opposite orders (as in the test above, a third session
    holds an event in the middle until both wait): the revival's UPDATE locked rows as it
    scanned them and deadlocked with the retry's key-ordered locks, and PostgreSQL aborted one
    of them — the operator's action (a 500) or the dispatcher's run."""
    from ops import revival

    monkeypatch.setattr("ops.outbox.outbox_nudge", lambda: None)
    monkeypatch.setattr(revival, "_probe_delivers", lambda probe: True)  # (the server took the probe)
    ids = sorted(uuid.uuid4() for _ in range(41))
    probe_id, ids = ids[0], ids[1:]  # the probe is the longest waiting: the earliest next_attempt_at
    OutboxEvent.objects.bulk_create(
        OutboxEvent(id=pk, event_type=EventType.GENERIC, recipient_email="x@example.com", status=OutboxStatus.DEAD,
                    retry_count=5, error_message="SMTP down", transient_failure=True,
                    next_attempt_at=timezone.now() - timedelta(minutes=1 if pk == probe_id else 0))
        for pk in reversed([probe_id, *ids]))

    retried, revived, held = race_in_opposite_orders(lambda: outbox_retry(event_ids=ids[:30]),
                                                     revival.outbox_revive_after_outage, held_id=ids[20])

    assert not [r for r in (retried, revived, held) if isinstance(r, Exception)], (retried, revived, held)
    # Each event revived, none left (the probe counted apart). Not "once" exactly: a retry whose
    # locks wait for the revival then finds events PENDING with a next attempt after its own
    # `now` — waiting out a backoff, to it — and gives them fresh attempts again (harmless).
    assert len(retried) + revived - 1 >= len(ids) and revived - 1 <= len(ids)
    assert set(OutboxEvent.objects.exclude(pk=probe_id).values_list("status", "retry_count", "transient_failure")) \
        == {(OutboxStatus.PENDING, 0, False)}


def test_a_dispatcher_handing_back_its_batch_racing_an_operators_retry_neither_deadlocks(monkeypatch):
    """A dispatcher whose database went away mid-batch hands back the events it did not record
    (ops.dispatch._release_unrecorded) once the database answers again — by then their lease has
    run out, so an operator may be retrying the same events. The hand-back's UPDATE locked the
    rows in the order it scanned them and deadlocked with the retry's key-ordered locks."""
    from ops.dispatch import _release_unrecorded

    monkeypatch.setattr("ops.outbox.outbox_nudge", lambda: None)
    lapsed = timezone.now() - timedelta(seconds=5)
    ids = sorted(uuid.uuid4() for _ in range(40))
    OutboxEvent.objects.bulk_create(OutboxEvent(id=pk, event_type=EventType.GENERIC, recipient_email="x@example.com",
                                                status=OutboxStatus.PENDING, next_attempt_at=lapsed,
                                                claimed_until=lapsed) for pk in reversed(ids))
    batch = list(OutboxEvent.objects.filter(pk__in=ids))

    retried, released, held = race_in_opposite_orders(lambda: outbox_retry(event_ids=ids[:30]),
                                                      lambda: _release_unrecorded(batch, why="test"), held_id=ids[20])

    assert not [r for r in (retried, released, held) if isinstance(r, Exception)], (retried, released, held)
    assert set(OutboxEvent.objects.values_list("status", "claimed_until")) == {(OutboxStatus.PENDING, None)}
    assert len(retried) + released == len(ids)  # each event handed back or retried, none both
