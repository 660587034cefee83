"""ops.handlers: delivering events while their server is in trouble. A failing mail server or
documents database costs one event of the batch an attempt and defers the others without using
one up; a connection dropped after delivering is replaced, not taken for an outage."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ops import handlers as ops_handlers
from ops.dispatch import outbox_dispatch_batch
from ops.models import OutboxEvent, OutboxStatus
from ops.outbox import EventType, outbox_enqueue
from ops.tests.factories import make_due

pytestmark = pytest.mark.django_db


def test_the_documents_database_down_delays_no_email_and_uses_up_no_attempt(smtp_server, monkeypatch):
    from django.db import OperationalError

    from ops import documents
    from ops.outbox import document_sync_event, outbox_enqueue_many

    calls = []

    def unreachable(*args, **kwargs):
        calls.append(args)
        raise OperationalError("couldn't get a connection after 10.00 sec")

    monkeypatch.setattr(documents, "document_repair_many", unreachable)
    monkeypatch.setattr(documents, "document_sync", unreachable)
    syncs = outbox_enqueue_many([document_sync_event(("item", n)) for n in range(1, 6)])
    email = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="d@example.com",
                           payload={"subject": "s", "message": "m"})

    stats = outbox_dispatch_batch(batch_size=10)

    assert stats["sent"] == 1 and stats["deferred"] == 5
    email.refresh_from_db()
    assert email.status == OutboxStatus.SENT
    assert len(calls) == 1  # the batched sync found the database away; nobody waited again
    for sync in OutboxEvent.objects.filter(pk__in=[e.pk for e in syncs]):
        assert (sync.status, sync.retry_count) == (OutboxStatus.PENDING, 0)
        assert sync.next_attempt_at > timezone.now() + timedelta(seconds=20)


def test_while_the_documents_database_is_down_later_batches_do_not_wait_for_it_again(smtp_server, monkeypatch):
    """Each try waits out the connection pool (DB_POOL_TIMEOUT, 10 s). Trying once per batch
    made every batch holding a sync cost that long — and the deferred syncs, due again every
    30 s and older than new emails, came first in the claims: a backlog of them held the
    confirmation emails of every new booking back for minutes, longer the longer the outage."""
    import time

    from django.db import OperationalError

    from ops import documents
    from ops.outbox import document_sync_event, outbox_enqueue_many

    calls = []

    def unreachable(*args, **kwargs):
        calls.append(args)
        time.sleep(0.3)  # (the pool's timeout, shortened)
        raise OperationalError("couldn't get a connection after 10.00 sec")

    monkeypatch.setattr(documents, "document_repair_many", unreachable)
    monkeypatch.setattr(documents, "document_sync", unreachable)
    emails = []
    started = time.monotonic()
    for n in range(4):  # four batches, each a booking's email and its document sync
        outbox_enqueue_many([document_sync_event(("booking", n))])
        emails.append(outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"b{n}@example.com",
                                     payload={"subject": "s", "message": "m"}))
        assert outbox_dispatch_batch(batch_size=10) == {"claimed": 2, "sent": 1, "retry": 0, "deferred": 1, "dead": 0}

    assert len(calls) == 1  # the first batch found it down; the next ones deferred without waiting
    assert time.monotonic() - started < 1.0
    assert all(e.status == OutboxStatus.SENT for e in OutboxEvent.objects.filter(pk__in=[e.pk for e in emails]))

    ops_handlers.DOCUMENTS_REST.end()  # DOCUMENTS_RETRY later: tried again
    outbox_enqueue_many([document_sync_event(("booking", 9))])
    outbox_dispatch_batch(batch_size=10)
    assert len(calls) == 2


class OneConnectionBackend:
    """Email backend double: one instance is one SMTP connection, which the server drops after
    `limit` messages (a per-connection limit, an idle timeout) while the next send is under way; a
    dropped connection stays dropped, so only a fresh one (get_connection) can send again."""

    limit = 1
    sent: list = []

    def __init__(self, fail_silently=False, **kwargs):
        self.delivered = 0

    def open(self):
        return False

    def close(self):
        pass

    def send_messages(self, messages):
        from smtplib import SMTPServerDisconnected

        if self.delivered >= OneConnectionBackend.limit:
            raise SMTPServerDisconnected("Connection unexpectedly closed")
        self.delivered += 1
        OneConnectionBackend.sent.extend(m.to[0] for m in messages)
        return len(messages)


def test_a_connection_dropped_after_delivering_is_replaced_not_taken_for_an_outage(settings, monkeypatch):
    """One connection serves a batch; once it failed, the next email must not reuse it (it would
    fail too). A connection that had delivered and then failed may only have been dropped: the
    next email tries a fresh one rather than deferring the rest of the batch."""
    settings.EMAIL_BACKEND = "ops.tests.test_handlers.OneConnectionBackend"
    monkeypatch.setattr(OneConnectionBackend, "sent", [])
    first, second, third = (outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"{name}@example.com",
                                           payload={"subject": "s", "message": "m"})
                            for name in ("first", "second", "third"))

    stats = outbox_dispatch_batch()

    assert (stats["retry"], stats["sent"], stats["deferred"]) == (1, 2, 0)
    second.refresh_from_db()
    assert (second.status, second.retry_count) == (OutboxStatus.PENDING, 1)
    assert OneConnectionBackend.sent == ["first@example.com", "third@example.com"]


class TestHungMailServer:
    """A mail server that accepts connections but never answers DATA (or fails every message):
    one email of a batch pays for finding out, the batch's other emails are deferred without
    using up an attempt, and the syncs and jobs behind them are not held back."""

    TIMEOUT = 1  # EMAIL_TIMEOUT in these tests (10 s in production)

    @pytest.fixture
    def hung_server(self, smtp_server, settings):
        settings.EMAIL_TIMEOUT = self.TIMEOUT
        smtp_server.delay = 3600  # answers EHLO, MAIL and RCPT; DATA never gets a reply
        yield smtp_server
        smtp_server.delay = 0

    @pytest.mark.django_db(databases=["default", "documents"])
    def test_one_email_waits_out_the_timeout_the_rest_of_the_batch_is_deferred(self, hung_server, make_user):
        import time

        from catalog.tests.factories import make_item
        from ops.models import Document

        emails = [outbox_enqueue(event_type=EventType.USER_REGISTERED, recipient_email=f"h{n}@example.com",
                                 payload={"username": f"h{n}", "email": f"h{n}@example.com"}) for n in range(12)]
        item = make_item(make_user(roles=["EVENT_ORGANIZER"]), name="Behind the emails")  # queues its sync
        started = time.monotonic()

        stats = outbox_dispatch_batch(batch_size=20)

        elapsed = time.monotonic() - started
        assert (stats["retry"], stats["deferred"], stats["sent"]) == (1, 11, 1)
        assert elapsed < 6 * self.TIMEOUT, f"the batch took {elapsed:.1f}s"  # 12 timeouts before
        assert Document.objects.using("documents").filter(entity_type="item", entity_id=str(item.pk)).exists()
        rows = OutboxEvent.objects.filter(pk__in=[e.pk for e in emails])
        assert sorted(row.retry_count for row in rows) == [0] * 11 + [1]  # only the one that tried
        tried = rows.get(retry_count=1)
        assert tried.transient_failure and tried.status == OutboxStatus.PENDING
        for row in rows.exclude(pk=tried.pk):
            assert row.status == OutboxStatus.PENDING and row.error_message.startswith("Deferred until")
            assert "mail server failing" in row.error_message
            assert row.next_attempt_at > timezone.now() + timedelta(seconds=20)

    @pytest.mark.django_db(databases=["default", "documents"])
    def test_later_batches_do_not_wait_for_the_hung_server_again(self, hung_server, make_user):
        """Trying it once per batch made every batch with an email in it cost EMAIL_TIMEOUT, and
        the deferred emails, due again every 30 s and older than new events, come first in the
        claims: a backlog of them held every document sync and job run behind it for minutes."""
        import time

        from catalog.tests.factories import make_item
        from ops.models import Document

        organizer = make_user(roles=["EVENT_ORGANIZER"])
        items, started = [], time.monotonic()
        for n in range(4):  # four batches, each an email and a document sync
            outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"w{n}@example.com",
                           payload={"subject": "s", "message": "m"})
            items.append(make_item(organizer, name=f"Behind the emails {n}"))
            stats = outbox_dispatch_batch(batch_size=10)
            assert stats["sent"] == 1  # the sync
        elapsed = time.monotonic() - started

        assert elapsed < 2.5 * self.TIMEOUT, f"four batches took {elapsed:.1f}s"  # one timeout each before
        assert Document.objects.using("documents").filter(entity_type="item").count() == 4
        assert sorted(OutboxEvent.objects.filter(event_type=EventType.GENERIC).values_list("retry_count", flat=True)) == [
            0, 0, 0, 1]  # only the first tried

        make_due()  # EMAIL_RETRY later: the server is tried again, once
        stats = outbox_dispatch_batch(batch_size=10)
        assert (stats["retry"], stats["deferred"]) == (1, 3)

    def test_notification_jobs_behind_a_failed_email_are_deferred_too(self, hung_server):
        from ops.jobs import job_create_notification

        outbox_enqueue(event_type=EventType.GENERIC, recipient_email="first@example.com",
                       payload={"subject": "s", "message": "m"})
        job = job_create_notification(recipient_email="later@example.com", subject="s", message="m")

        stats = outbox_dispatch_batch(batch_size=10)

        assert (stats["retry"], stats["deferred"]) == (1, 1)
        assert job.__class__.objects.get(pk=job.pk).status == "queued"  # not run, not failed

    def test_a_dead_server_still_makes_each_email_dead_after_its_own_attempts(self, smtp_server, settings):
        settings.OUTBOX_MAX_RETRIES = 2
        smtp_server.stop()  # refused at once: rounds are quick
        emails = [outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"d{n}@example.com",
                                 payload={"subject": "s", "message": "m"}) for n in range(3)]
        for _ in range(6):  # each round one email tries; deferrals use up nothing
            make_due()
            stats = outbox_dispatch_batch(batch_size=10)
            assert stats["retry"] + stats["dead"] == 1
        rows = OutboxEvent.objects.filter(pk__in=[e.pk for e in emails])
        assert {(row.status, row.retry_count, row.transient_failure) for row in rows} == {
            (OutboxStatus.DEAD, 2, True)}
        assert outbox_dispatch_batch()["claimed"] == 0

    def test_a_failing_reconciliation_job_defers_no_notification(self, smtp_server, monkeypatch):
        """A reconciliation that times out (an OSError, "transient") is not the mail server."""
        import ops.reconciliation
        from ops.jobs import job_create_notification, job_create_reconciliation

        def times_out(**kwargs):
            raise TimeoutError("documents database timed out")

        monkeypatch.setattr(ops.reconciliation, "reconciliation_run", times_out)
        job_create_reconciliation(entity_type="item")
        job = job_create_notification(recipient_email="later@example.com", subject="s", message="m")

        stats = outbox_dispatch_batch(batch_size=10)

        assert (stats["retry"], stats["sent"], stats["deferred"]) == (1, 1, 0)
        assert job.__class__.objects.get(pk=job.pk).status == "completed"

    def test_a_recipient_refused_for_now_does_not_hold_back_the_others(self):
        from smtplib import (SMTPConnectError, SMTPDataError, SMTPRecipientsRefused, SMTPSenderRefused,
                             SMTPServerDisconnected)

        from ops.emails import delivery_failure_is_transient, mail_server_failing

        mailbox_full = SMTPRecipientsRefused({"a@example.com": (452, b"mailbox full")})
        assert delivery_failure_is_transient(mailbox_full) and not mail_server_failing(mailbox_full)
        assert mail_server_failing(TimeoutError("timed out"))
        assert mail_server_failing(SMTPServerDisconnected("Connection unexpectedly closed"))
        assert mail_server_failing(SMTPConnectError(421, b"too busy"))
        for about_one_message in (SMTPDataError(451, b"local error"), SMTPSenderRefused(451, b"later", "a@b.c")):
            assert delivery_failure_is_transient(about_one_message)
            assert not mail_server_failing(about_one_message)  # answered at once: the next email asks for itself


def test_a_cache_bump_left_from_a_redis_deployment_is_done_without_redis(settings):
    """CATALOG_CACHE_BUMP events written while Redis was down, dispatched after the system came
    back without REDIS_URL (embedded mode): there is no shared list cache left to invalidate.
    The handler failed on `None.set` and each went DEAD after OUTBOX_MAX_RETRIES, an alert no
    operator action could clear (a retry failed the same way)."""
    from catalog.cache import CACHE_BUMP_EVENT

    settings.REDIS_URL = ""
    bump = outbox_enqueue(event_type=CACHE_BUMP_EVENT)

    stats = outbox_dispatch_batch(batch_size=10)

    bump.refresh_from_db()
    assert (stats["sent"], bump.status, bump.error_message) == (1, OutboxStatus.SENT, "")
