"""bookings_project.db and .transactions: the lean statements of the booking path."""

import uuid
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from bookings_project.db import insert_many, select_instances
from bookings_project.transactions import CommitOutcomeUnknown, atomic_with_tail
from catalog.models import BookableItem, PriceTier
from catalog.tests.factories import make_item
from ops.models import OutboxEvent
from reservations.models import Booking

pytestmark = pytest.mark.django_db


def test_insert_many_stores_what_the_orm_stores(customer, organizer):
    item = make_item(organizer, tiers=[("A", "12.34", 10)])
    tier = item.tiers.get()
    event = OutboxEvent(event_type="X", recipient_email="a@example.com",
                        payload={"n": 1, "text": "ünïcode ' \" \\", "list": [1, "2"], "none": None})
    booking = Booking(user=customer, item=item, tier=tier, price_paid=Decimal("12.34"),
                      start_time=item.start_time, end_time=item.end_time)
    before = timezone.now()

    insert_many([event, OutboxEvent(event_type="Y")])
    [returned] = insert_many([booking])

    assert returned is booking and isinstance(booking.pk, int) and not booking._state.adding
    stored = Booking.objects.get(pk=booking.pk)
    assert (stored.user_id, stored.item_id, stored.tier_id, stored.price_paid, stored.status) == (
        customer.pk, item.pk, tier.pk, Decimal("12.34"), "CONFIRMED")
    assert (stored.start_time, stored.end_time) == (item.start_time, item.end_time)
    assert before <= stored.booking_date == booking.booking_date <= timezone.now()  # auto_now_add ran
    assert isinstance(event.pk, uuid.UUID)
    assert OutboxEvent.objects.get(pk=event.pk).payload == event.payload
    assert OutboxEvent.objects.filter(event_type="Y", payload={}).count() == 1
    # The ORM finds them by the same values it would have stored itself.
    assert Booking.objects.filter(booking_date=booking.booking_date, price_paid=Decimal("12.34")).count() == 1
    assert Booking.objects.filter(start_time__lt=item.start_time + timedelta(seconds=1),
                                  start_time__gte=item.start_time).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestAtomicWithTail:
    """On PostgreSQL the tail travels with the COMMIT; its errors still roll everything back."""

    @pytest.fixture(autouse=True)
    def _postgres(self):
        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL (DATABASE_URL)")

    @staticmethod
    def set_sold(item_id, sold_sql):
        def tail():
            with connection.cursor() as cursor:
                cursor.execute(f"UPDATE catalog_bookableitem SET sold = {sold_sql} WHERE id = %s", [item_id])
        return tail

    def test_a_refused_tail_rolls_the_whole_transaction_back_quietly(self, organizer, caplog):
        item = make_item(organizer)
        hooks = []
        with pytest.raises(IntegrityError) as raised:
            with atomic_with_tail() as at_commit:
                OutboxEvent.objects.create(event_type="WRITTEN_BEFORE_THE_TAIL")
                transaction.on_commit(lambda: hooks.append("ran"))
                at_commit(self.set_sold(item.pk, "capacity + 1"))

        assert "item_sold_within_capacity" in str(raised.value)
        assert not OutboxEvent.objects.filter(event_type="WRITTEN_BEFORE_THE_TAIL").exists() and hooks == []
        # The connection is usable again, in autocommit, out of pipeline mode.
        assert connection.get_autocommit() and connection.connection._pipeline is None
        assert BookableItem.objects.get(pk=item.pk).sold == 0
        assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.text

    def test_a_tail_that_succeeds_commits_and_runs_the_hooks_once(self, organizer):
        item = make_item(organizer)
        hooks, status = [], []
        with atomic_with_tail() as at_commit:
            OutboxEvent.objects.create(event_type="WRITTEN_BEFORE_THE_TAIL")
            transaction.on_commit(lambda: hooks.append("ran"))
            at_commit(self.set_sold(item.pk, "1"))
            # Committed together with the tail: atomic() then finds nothing left to send.
            at_commit(lambda: status.append(connection.connection.info.transaction_status.name))

        assert status == ["ACTIVE"]  # the second tail function ran inside the pipeline, before COMMIT
        assert OutboxEvent.objects.filter(event_type="WRITTEN_BEFORE_THE_TAIL").count() == 1
        assert BookableItem.objects.get(pk=item.pk).sold == 1 and hooks == ["ran"]
        assert connection.get_autocommit() and connection.connection._pipeline is None

    def test_the_tail_runs_after_everything_else_in_the_block(self):
        order = []
        with atomic_with_tail() as at_commit:
            at_commit(lambda: order.append("tail"))
            order.append("body")
        assert order == ["body", "tail"]

    def test_inside_an_enclosing_block_the_tail_just_runs(self, organizer):
        item = make_item(organizer)
        with transaction.atomic():
            with atomic_with_tail() as at_commit:
                at_commit(self.set_sold(item.pk, "1"))
            assert connection.connection.info.transaction_status.name == "INTRANS"
            transaction.set_rollback(True)
        assert BookableItem.objects.get(pk=item.pk).sold == 0

    def test_a_transaction_marked_for_rollback_is_not_committed_by_its_tail(self, organizer):
        from django.db.transaction import TransactionManagementError

        item = make_item(organizer)
        with pytest.raises(TransactionManagementError), atomic_with_tail() as at_commit:
            OutboxEvent.objects.create(event_type="WRITTEN_BEFORE_THE_TAIL")
            transaction.set_rollback(True)
            at_commit(self.set_sold(item.pk, "1"))

        assert not OutboxEvent.objects.filter(event_type="WRITTEN_BEFORE_THE_TAIL").exists()
        assert BookableItem.objects.get(pk=item.pk).sold == 0


def _terminate_own_backend():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")


@pytest.mark.django_db(transaction=True)
class TestCommitOutcome:
    """A connection that breaks once the COMMIT may be on its way is an unknown outcome, never
    a plain failure: the transaction may have been applied."""

    def test_a_connection_lost_at_the_commit_is_an_unknown_outcome(self, monkeypatch):
        monkeypatch.setattr("bookings_project.transactions._pipeline_supported", lambda: False)

        def lost():
            raise OperationalError("server closed the connection unexpectedly") from \
                psycopg.OperationalError("server closed the connection unexpectedly")

        with pytest.raises(CommitOutcomeUnknown) as raised:
            with atomic_with_tail():
                OutboxEvent.objects.create(event_type="WRITTEN_BEFORE_THE_COMMIT")
                monkeypatch.setattr(connection, "commit", lost)
        monkeypatch.undo()

        assert raised.value.status == 503 and raised.value.headers["Retry-After"]
        assert "may or may not have been saved" in raised.value.message
        assert isinstance(raised.value.__cause__, OperationalError)

    def test_a_commit_the_server_refuses_is_its_own_error_not_an_unknown_outcome(self, monkeypatch):
        from psycopg.errors import ForeignKeyViolation

        refused = OperationalError("refused")
        refused.__cause__ = ForeignKeyViolation()  # sqlstate 23503: the server answered

        def refuse():
            raise refused

        with pytest.raises(OperationalError) as raised:
            with atomic_with_tail():
                monkeypatch.setattr(connection, "commit", refuse)
        monkeypatch.undo()
        assert raised.value is refused

    def test_sqlite_errors_at_the_commit_are_final(self, monkeypatch):
        import sqlite3

        def locked():
            raise OperationalError("database is locked") from sqlite3.OperationalError("database is locked")

        with pytest.raises(OperationalError) as raised:
            with atomic_with_tail():
                monkeypatch.setattr(connection, "commit", locked)
        monkeypatch.undo()
        assert not isinstance(raised.value, CommitOutcomeUnknown)

    def test_a_connection_lost_before_the_commit_is_a_plain_failure(self, organizer):
        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL (DATABASE_URL)")
        with pytest.raises(OperationalError) as raised:
            with atomic_with_tail() as at_commit:
                OutboxEvent.objects.create(event_type="WRITTEN_BEFORE_THE_FAILURE")
                _terminate_own_backend()
                at_commit(lambda: None)
        assert not isinstance(raised.value, CommitOutcomeUnknown)
        connection.close()
        assert not OutboxEvent.objects.filter(event_type="WRITTEN_BEFORE_THE_FAILURE").exists()

    def test_a_connection_lost_once_the_pipeline_queued_the_commit_is_an_unknown_outcome(self, organizer):
        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL (DATABASE_URL)")
        import threading

        item = make_item(organizer)

        def terminate(pid):
            try:
                with connection.cursor() as cursor:  # this thread's own connection
                    cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            finally:
                connection.close()

        with pytest.raises(CommitOutcomeUnknown):
            with atomic_with_tail() as at_commit:
                OutboxEvent.objects.create(event_type="WRITTEN_BEFORE_THE_TAIL")
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    [pid] = cursor.fetchone()
                at_commit(TestAtomicWithTail.set_sold(item.pk, "1"))
                # The tail is queued with the COMMIT behind it; the server dies while running it.
                at_commit(lambda: connection.cursor().execute("SELECT pg_sleep(2)"))
                killer = threading.Timer(0.5, terminate, [pid])
                killer.start()
        killer.join()
        connection.close()
        # Here the server died before committing, so nothing was saved — which the client
        # could not have known: the same error follows a crash just after the commit.
        assert not OutboxEvent.objects.filter(event_type="WRITTEN_BEFORE_THE_TAIL").exists()
        assert BookableItem.objects.get(pk=item.pk).sold == 0

    def test_a_connection_lost_while_the_tail_is_sent_saves_nothing(self, organizer):
        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL (DATABASE_URL)")
        item = make_item(organizer)
        # Whether the client notices before or after queueing the COMMIT is a race; both
        # answers are honest (a plain failure, or 'unknown'), and nothing is saved.
        with pytest.raises((OperationalError, CommitOutcomeUnknown)):
            with atomic_with_tail() as at_commit:
                OutboxEvent.objects.create(event_type="WRITTEN_BEFORE_THE_TAIL")
                at_commit(TestAtomicWithTail.set_sold(item.pk, "1"))
                at_commit(_terminate_own_backend)
        connection.close()
        assert not OutboxEvent.objects.filter(event_type="WRITTEN_BEFORE_THE_TAIL").exists()
        assert BookableItem.objects.get(pk=item.pk).sold == 0


def test_select_instances_reads_what_the_orm_reads(organizer):
    item = make_item(organizer, name="Ünïcode ' item", tiers=[("A", "12.34", 4), ("B", "0.50", 6)],
                     is_private=True, category="Tech", tags=["x", "y"])

    [raw] = select_instances(BookableItem, "WHERE id = %s", [item.pk])
    tiers = select_instances(PriceTier, "WHERE item_id = %s ORDER BY position", [item.pk])

    orm = BookableItem.objects.get(pk=item.pk)
    for field in BookableItem._meta.concrete_fields:
        assert getattr(raw, field.attname) == getattr(orm, field.attname), field.name
    assert raw.start_time.tzinfo is not None and raw.is_private is True and raw.tags == ["x", "y"]
    assert [(t.name, t.price, t.max_capacity) for t in tiers] == [("A", Decimal("12.34"), 4),
                                                                  ("B", Decimal("0.50"), 6)]
    assert not raw._state.adding and select_instances(BookableItem, "WHERE id = %s", [-1]) == []
