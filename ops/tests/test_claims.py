"""ops.claims: claiming due events (the longest waiting first, for one lease), fencing each
outcome to the dispatcher that still holds the event, backoff, and recording failures and
deferrals. Delivery goes through a real SMTP server on loopback."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ops.claims import backoff
from ops.dispatch import outbox_dispatch_batch, outbox_dispatch_until_empty
from ops.models import OutboxEvent, OutboxStatus
from ops.outbox import EventType, outbox_enqueue, outbox_retry
from ops.tests.factories import make_due, register

pytestmark = pytest.mark.django_db


def test_smtp_down_events_retry_with_backoff_then_all_delivered(api_client, smtp_server):
    smtp_server.stop()
    for name in ("ann", "ben", "cat"):
        register(api_client, name)

    before = timezone.now()
    stats = outbox_dispatch_batch()

    # The first email finds the server away; the batch's others wait without using up an attempt.
    assert (stats["retry"], stats["deferred"], stats["sent"]) == (1, 2, 0)
    first, *others = OutboxEvent.objects.order_by("created_at")
    assert (first.status, first.retry_count) == (OutboxStatus.PENDING, 1)
    assert first.error_message  # why it failed is recorded
    assert first.next_attempt_at >= before + backoff(1) - timedelta(seconds=1)
    for event in others:
        assert (event.status, event.retry_count) == (OutboxStatus.PENDING, 0)
        assert event.error_message.startswith("Deferred until")
    # Not due yet: nothing is claimed before the backoff has passed.
    assert outbox_dispatch_batch()["claimed"] == 0

    smtp_server.start()
    make_due()
    totals = outbox_dispatch_until_empty()

    assert totals["sent"] == 3
    assert sorted(m["to"][0] for m in smtp_server.messages) == ["ann@example.com", "ben@example.com",
                                                                 "cat@example.com"]
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {OutboxStatus.SENT}


def test_the_seeds_query_of_the_outbox_events_table_shows_retries(api_client, smtp_server):
    """Seed 004 tells testers to "query the outbox_events table" for these columns."""
    from django.db import connection

    smtp_server.stop()
    register(api_client, "dora")
    outbox_dispatch_batch()

    with connection.cursor() as cursor:
        cursor.execute("SELECT event_type, processed_at, retry_count, error_message FROM outbox_events")
        [(event_type, processed_at, retry_count, error_message)] = cursor.fetchall()
    assert (event_type, processed_at, retry_count) == (EventType.USER_REGISTERED, None, 1)
    assert error_message


def test_backoff_grows_exponentially_and_is_capped(settings):
    settings.OUTBOX_RETRY_BASE_SECONDS = 5
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff(30) == timedelta(hours=1)


def test_dispatcher_that_dies_after_claiming_loses_nothing(smtp_server, settings):
    from ops.claims import outbox_claim

    settings.OUTBOX_LEASE_SECONDS = 60
    for n in range(5):
        outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"r{n}@example.com",
                       payload={"subject": "Hello", "message": f"message {n}"})
    claimed = outbox_claim(batch_size=3)  # ... and the worker is killed before sending
    assert len(claimed) == 3

    outbox_dispatch_until_empty()
    assert len(smtp_server.messages) == 2  # the leased events wait for the lease to run out

    OutboxEvent.objects.filter(status=OutboxStatus.PENDING).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1))
    outbox_dispatch_until_empty()
    assert sorted(m["to"][0] for m in smtp_server.messages) == [f"r{n}@example.com" for n in range(5)]
    assert len(set(smtp_server.message_ids())) == 5


class TestClaimFencing:
    """An operator's retry and a dispatcher whose lease ran out never make an event go out twice
    or undo another dispatcher's outcome."""

    @pytest.fixture
    def event(self, settings):
        settings.OUTBOX_LEASE_SECONDS = 60
        return outbox_enqueue(event_type=EventType.GENERIC, recipient_email="f@example.com",
                              payload={"subject": "Hello", "message": "m"})

    def test_retry_leaves_an_event_alone_while_a_dispatcher_delivers_it(self, event, smtp_server):
        from ops.claims import outbox_claim
        from ops.dispatch import outbox_process
        from ops.handlers import BatchContext

        [claimed] = outbox_claim(batch_size=1)
        assert outbox_retry(event_ids=[event.pk]) == []  # in flight: reviving it would send it twice
        assert outbox_dispatch_batch()["claimed"] == 0

        assert outbox_process(claimed, BatchContext()) == OutboxStatus.SENT
        assert len(smtp_server.messages) == 1
        assert outbox_retry(event_ids=[event.pk]) == []  # SENT

    def test_a_dispatcher_past_its_lease_does_not_overwrite_the_next_holders_outcome(self, event, smtp_server):
        from ops.claims import outbox_claim, record_failure

        [first] = outbox_claim(batch_size=1)  # dispatcher A: stalls past its lease
        [second] = outbox_claim(batch_size=1, now=timezone.now() + timedelta(seconds=61))  # B
        outbox_dispatch_batch()  # nothing due: B holds it
        from ops.dispatch import outbox_process
        from ops.handlers import BatchContext

        assert outbox_process(second, BatchContext()) == OutboxStatus.SENT
        record_failure(first, "SMTPServerDisconnected: timed out")  # A's late outcome

        event.refresh_from_db()
        assert (event.status, event.retry_count, event.claimed_until) == (OutboxStatus.SENT, 0, None)
        assert len(smtp_server.messages) == 1

    def test_retry_revives_an_event_whose_dispatcher_died(self, event, smtp_server):
        from ops.claims import outbox_claim

        # Claimed two minutes ago (so due before that), its 60 s lease over: not a queued event.
        OutboxEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=180))
        [claimed] = outbox_claim(batch_size=1, now=timezone.now() - timedelta(seconds=120))
        assert claimed.pk == event.pk
        assert outbox_retry(event_ids=[event.pk]) == [event.pk]
        outbox_dispatch_batch()

        event.refresh_from_db()
        assert event.status == OutboxStatus.SENT and len(smtp_server.messages) == 1


def test_the_claim_takes_the_longest_waiting_due_events_first(smtp_server):
    """outbox_claim orders by next_attempt_at (oldest due first): under a backlog a fresh event
    must not starve one that has been waiting (a retried event waits behind nothing newer)."""
    from ops.claims import outbox_claim

    now = timezone.now()
    events = [outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"q{n}@example.com",
                             payload={"subject": "s", "message": "m"}) for n in range(3)]
    for minutes, event in zip((1, 30, 5), events):  # due since 1, 30 and 5 minutes
        OutboxEvent.objects.filter(pk=event.pk).update(next_attempt_at=now - timedelta(minutes=minutes))

    assert [e.pk for e in outbox_claim(batch_size=2)] == [events[1].pk, events[2].pk]
    assert [e.pk for e in outbox_claim(batch_size=2)] == [events[0].pk]


def test_a_deferral_to_a_past_time_waits_at_least_the_minimum(monkeypatch):
    """A handler's "not yet, try at <a moment already past>" must not make the event due at once:
    the same dispatcher run would claim it again and spin. It waits MIN_DEFERRAL at least."""
    from ops import handlers
    from ops.claims import MIN_DEFERRAL
    from ops.exceptions import EventDeferred

    def not_yet(event, ctx):
        raise EventDeferred("job still running", until=timezone.now() - timedelta(hours=1))

    monkeypatch.setattr(handlers, "_send_email", not_yet)
    event = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="p@example.com",
                           payload={"subject": "s", "message": "m"})
    before = timezone.now()

    assert outbox_dispatch_batch()["deferred"] == 1

    event.refresh_from_db()
    assert event.status == OutboxStatus.PENDING and event.retry_count == 0
    assert event.next_attempt_at >= before + MIN_DEFERRAL
    assert outbox_dispatch_batch()["claimed"] == 0  # not due again within the same run
