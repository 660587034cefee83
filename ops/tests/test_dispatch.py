"""ops.dispatch: a batch's order (emails before document syncs), an event without a handler,
and the main database going away while a batch is out."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ops.dispatch import outbox_dispatch_batch, outbox_dispatch_until_empty
from ops.models import OutboxEvent, OutboxStatus
from ops.outbox import EventType, outbox_enqueue

pytestmark = pytest.mark.django_db


def test_event_without_handler_goes_dead_with_reason():
    event = OutboxEvent.objects.create(event_type="SOMETHING_UNKNOWN", payload={})
    outbox_dispatch_batch()
    event.refresh_from_db()
    assert event.status == OutboxStatus.DEAD and "No handler" in event.error_message


@pytest.mark.django_db(databases=["default", "documents"])
def test_emails_go_before_document_syncs_even_when_the_sync_is_older(smtp_server, monkeypatch):
    """Within a batch, emails are processed first: an email never waits behind the documents
    database (which may be slow or down), whatever the events' age."""
    from ops import dispatch, handlers
    from ops.outbox import document_sync_event, outbox_enqueue_many

    order = []
    real_email, real_sync, real_batch_sync = handlers._send_email, handlers._sync_documents, \
        handlers.sync_batch_documents

    def email(event, ctx):
        order.append("email")
        return real_email(event, ctx)

    def sync(event, ctx):
        order.append("sync")
        return real_sync(event, ctx)

    def batch_sync(events, ctx):
        order.append("batch sync")
        return real_batch_sync(events, ctx)

    monkeypatch.setattr(handlers, "_send_email", email)
    monkeypatch.setattr(handlers, "_sync_documents", sync)
    monkeypatch.setattr(dispatch, "sync_batch_documents", batch_sync)
    [older_sync] = outbox_enqueue_many([document_sync_event(("item", 1))])
    mail = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="e@example.com",
                          payload={"subject": "s", "message": "m"})
    past = timezone.now() - timedelta(minutes=10)
    OutboxEvent.objects.filter(pk=older_sync.pk).update(created_at=past, next_attempt_at=past)
    OutboxEvent.objects.filter(pk=mail.pk).update(next_attempt_at=past + timedelta(minutes=5))

    stats = outbox_dispatch_batch(batch_size=10)

    assert stats["claimed"] == 2 and stats["sent"] == 2
    assert order == ["email", "batch sync", "sync"]


class TestMainDatabaseOutageMidBatch:
    """The main database goes away while a batch is out (an outcome cannot be written): the live
    dispatcher waits for it and hands back the events it did not record, instead of crashing and
    leaving them hidden for the whole lease."""

    @pytest.fixture
    def events(self, settings):
        settings.OUTBOX_LEASE_SECONDS = 600
        return [outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"b{n}@example.com",
                               payload={"subject": "s", "message": "m"}) for n in range(4)]

    @pytest.fixture
    def outage_at_second_outcome(self, monkeypatch):
        """Writing the second SENT fails as a dropped connection does (the email went out);
        `meanwhile` runs just before, as another process would."""
        from django.db import OperationalError

        from ops import dispatch, outages

        monkeypatch.setattr(outages, "FIRST_PAUSE", 0)
        real, calls, state = dispatch.record_sent, [], {"meanwhile": lambda: None}

        def record_success(event):
            calls.append(event.pk)
            if len(calls) == 2:
                state["meanwhile"]()
                raise OperationalError("server closed the connection unexpectedly")
            real(event)

        monkeypatch.setattr(dispatch, "record_sent", record_success)
        return state

    def test_unrecorded_events_are_released_and_go_out_soon(self, events, outage_at_second_outcome, smtp_server):
        stats = outbox_dispatch_batch(batch_size=4)  # does not raise: the database answers again

        assert stats["sent"] == 1
        rows = {e.pk: e for e in OutboxEvent.objects.all()}
        assert rows[events[0].pk].status == OutboxStatus.SENT
        for event in events[1:]:  # the one whose SENT was lost, and the two never tried
            row = rows[event.pk]
            assert (row.status, row.retry_count, row.claimed_until) == (OutboxStatus.PENDING, 0, None)
            assert row.next_attempt_at <= timezone.now()  # due now, not at the end of the lease

        assert outbox_dispatch_until_empty()["sent"] == 3
        assert set(OutboxEvent.objects.values_list("status", flat=True)) == {OutboxStatus.SENT}
        # The email sent before its SENT was lost goes out again, with the same Message-ID.
        assert smtp_server.message_ids().count(f"<{events[1].pk}@bookings.local>") == 2
        assert smtp_server.duplicates() == 1

    def test_an_event_another_dispatcher_claimed_meanwhile_is_not_released(self, events, outage_at_second_outcome,
                                                                             smtp_server):
        other_lease = timezone.now() + timedelta(seconds=900)

        def claimed_by_another():  # this batch's lease ran out and another dispatcher took the last event
            OutboxEvent.objects.filter(pk=events[3].pk).update(claimed_until=other_lease, next_attempt_at=other_lease)

        outage_at_second_outcome["meanwhile"] = claimed_by_another
        outbox_dispatch_batch(batch_size=4)

        taken = OutboxEvent.objects.get(pk=events[3].pk)
        assert (taken.status, taken.claimed_until, taken.next_attempt_at) == (
            OutboxStatus.PENDING, other_lease, other_lease)
        assert OutboxEvent.objects.get(pk=events[2].pk).claimed_until is None

    def test_a_database_that_stays_away_fails_the_task(self, events, outage_at_second_outcome, monkeypatch):
        from django.db import OperationalError

        from ops import dispatch

        monkeypatch.setattr(dispatch, "database_wait", lambda **kwargs: False)
        with pytest.raises(OperationalError):
            outbox_dispatch_batch(batch_size=4)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_dispatcher_whose_connection_is_killed_mid_batch_reconnects_and_releases(smtp_server, monkeypatch):
    """A real dropped connection (the server ends the dispatcher's session, as a restart does)
    between two sends: the batch reconnects and its unrecorded events are due again at once."""
    import psycopg
    from django.db import connection

    from bookings_project.testing import database_url
    from ops import handlers, outages

    monkeypatch.setattr(outages, "FIRST_PAUSE", 0.05)
    events = [outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"k{n}@example.com",
                             payload={"subject": "s", "message": "m"}) for n in range(3)]
    real_send = handlers._send_email

    def send_then_lose_the_connection(event, ctx):
        real_send(event, ctx)
        if event.pk == events[0].pk:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                [pid] = cursor.fetchone()
            with psycopg.connect(database_url("default"), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    monkeypatch.setattr(handlers, "_send_email", send_then_lose_the_connection)
    try:
        outbox_dispatch_batch(batch_size=3)
        rows = OutboxEvent.objects.filter(pk__in=[e.pk for e in events])
        assert all(row.status == OutboxStatus.PENDING and row.claimed_until is None for row in rows)
        monkeypatch.setattr(handlers, "_send_email", real_send)
        assert outbox_dispatch_until_empty()["sent"] == 3
        assert sorted(smtp_server.message_ids()).count(f"<{events[0].pk}@bookings.local>") == 2
    finally:
        connection.close()
