"""Outbox delivery through a real SMTP server on loopback."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ops.claims import backoff
from ops.dispatch import outbox_dispatch_batch, outbox_dispatch_until_empty
from ops.models import OutboxEvent, OutboxStatus
from ops.outbox import EventType, outbox_enqueue, outbox_retry

pytestmark = pytest.mark.django_db


def register(api_client, name):
    response = api_client.post("/api/v1/user", {"username": name, "email": f"{name}@example.com",
                                                "password": "S3cure-pass!"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def make_due():
    OutboxEvent.objects.filter(status=OutboxStatus.PENDING).update(next_attempt_at=timezone.now())


def test_registration_writes_one_event_and_delivers_one_welcome_email(api_client, smtp_server):
    register(api_client, "alice")
    event = OutboxEvent.objects.get()
    assert (event.event_type, event.status, event.recipient_email) == (
        EventType.USER_REGISTERED, OutboxStatus.PENDING, "alice@example.com")

    stats = outbox_dispatch_batch()

    assert stats == {"claimed": 1, "sent": 1, "retry": 0, "deferred": 0, "dead": 0}
    [mail] = smtp_server.messages
    assert mail["to"] == ["alice@example.com"]
    assert "Welcome" in mail["message"]["Subject"]
    assert mail["message"]["Message-ID"] == f"<{event.pk}@bookings.local>"
    body = mail["message"].get_body(preferencelist=("plain",)).get_content()
    assert "alice@example.com" in body
    assert mail["message"].get_body(preferencelist=("html",)) is not None
    event.refresh_from_db()
    assert event.status == OutboxStatus.SENT and event.processed_at is not None
    # Dispatching again sends nothing more.
    assert outbox_dispatch_batch()["claimed"] == 0
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize("subject", ["Hi\r\nBcc: evil@example.net", "Hi\rBcc: evil@example.net",
                                     "Hi\u2028Bcc: evil@example.net", "Hi\n\n\tBcc: evil@example.net"])
def test_a_line_break_in_a_requested_subject_is_one_line_never_a_header(client_for, make_user, smtp_server, subject):
    """No header injection, and no notification that fails every attempt on BadHeaderError."""
    operator = client_for(make_user(roles=["IT_OPERATOR"]))
    response = operator.post("/notifications", {"type": "GENERIC", "recipient": "dora@example.com",
                                                "data": {"subject": subject, "message": "Hello"}}, format="json")
    assert response.status_code == 202

    assert outbox_dispatch_until_empty()["sent"] == 1
    [mail] = smtp_server.messages
    assert mail["to"] == ["dora@example.com"] and mail["message"]["Bcc"] is None
    assert mail["message"]["Subject"] == "Hi Bcc: evil@example.net"


def test_subjects_are_plain_text_not_html_escaped(client_for, make_user, smtp_server):
    operator = client_for(make_user(roles=["IT_OPERATOR"]))
    subject = 'Tom & Jerry <b> "quoted" it\'s'
    for kind in ("GENERIC", "BOOKING_CONFIRMED"):
        data = {"subject": subject, "message": "Hello", "itemName": subject}
        assert operator.post("/notifications", {"type": kind, "recipient": "dora@example.com", "data": data},
                             format="json").status_code == 202
    outbox_dispatch_until_empty()
    assert sorted(m["message"]["Subject"] for m in smtp_server.messages) == sorted(
        [subject, f"Booking confirmed: {subject}"])


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


def test_after_max_retries_event_is_dead_and_retry_sends_it(api_client, smtp_server, settings):
    settings.OUTBOX_MAX_RETRIES = 3
    smtp_server.stop()
    register(api_client, "dora")
    for attempt in range(3):
        make_due()
        outbox_dispatch_batch()
    event = OutboxEvent.objects.get()
    assert event.status == OutboxStatus.DEAD and event.retry_count == 3
    make_due()
    assert outbox_dispatch_batch()["claimed"] == 0  # DEAD events are not retried on their own

    smtp_server.start()
    assert outbox_retry(event_ids=[event.pk]) == [event.pk]
    outbox_dispatch_batch()

    event.refresh_from_db()
    assert event.status == OutboxStatus.SENT
    assert [m["to"] for m in smtp_server.messages] == [["dora@example.com"]]


class TestMailServerOutage:
    """Events that went DEAD only because the mail server was away go out on their own once it
    answers; events the server refused for good wait for an operator."""

    @pytest.fixture(autouse=True)
    def _three_attempts(self, settings):
        settings.OUTBOX_MAX_RETRIES = 3

    def _fail_until_dead(self):
        for _ in range(3):
            make_due()
            outbox_dispatch_batch()

    def test_unreachable_then_back_revives_and_delivers_without_an_operator(self, smtp_server):
        from ops.revival import outbox_revive_after_outage

        event = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="o@example.com",
                               payload={"subject": "s", "message": "m"})
        smtp_server.stop()
        self._fail_until_dead()
        event.refresh_from_db()
        assert (event.status, event.transient_failure) == (OutboxStatus.DEAD, True)
        assert outbox_revive_after_outage(probe_every=0) == 0  # still away: nothing revived

        smtp_server.start()
        assert outbox_revive_after_outage(probe_every=0) == 1
        outbox_dispatch_batch()
        event.refresh_from_db()
        assert event.status == OutboxStatus.SENT and len(smtp_server.messages) == 1

    @pytest.mark.parametrize("reply, transient", [("421 Service not available, try later", True),
                                                  ("550 No such user here", False)])
    def test_a_try_later_reply_is_the_servers_trouble_a_refusal_is_the_messages(self, smtp_server, reply,
                                                                                transient):
        from ops.revival import outbox_revive_after_outage

        event = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="r@example.com",
                               payload={"subject": "s", "message": "m"})
        smtp_server.reply = reply
        self._fail_until_dead()
        event.refresh_from_db()
        assert (event.status, event.transient_failure) == (OutboxStatus.DEAD, transient)
        smtp_server.reply = None
        assert outbox_revive_after_outage(probe_every=0) == (1 if transient else 0)

    def test_a_notification_job_that_failed_on_the_outage_runs_again(self, smtp_server, make_user, client_for):
        from ops.revival import outbox_revive_after_outage
        from ops.models import Job

        operator = client_for(make_user(roles=["IT_OPERATOR"]))
        smtp_server.stop()
        job_id = operator.post("/notifications", {"type": "GENERIC", "recipient": "j@example.com",
                                                  "data": {"subject": "s", "message": "m"}},
                               format="json").json()["jobId"]
        self._fail_until_dead()
        assert OutboxEvent.objects.get(event_type="JOB_RUN").transient_failure
        smtp_server.start()
        outbox_revive_after_outage(probe_every=0)
        outbox_dispatch_batch()
        assert Job.objects.get(pk=job_id).status == "completed" and len(smtp_server.messages) == 1


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

        outbox_claim(batch_size=1, now=timezone.now() - timedelta(seconds=120))  # its lease is over
        assert outbox_retry(event_ids=[event.pk]) == [event.pk]
        outbox_dispatch_batch()

        event.refresh_from_db()
        assert event.status == OutboxStatus.SENT and len(smtp_server.messages) == 1


def test_event_without_handler_goes_dead_with_reason():
    event = OutboxEvent.objects.create(event_type="SOMETHING_UNKNOWN", payload={})
    outbox_dispatch_batch()
    event.refresh_from_db()
    assert event.status == OutboxStatus.DEAD and "No handler" in event.error_message


class TestNudgeDebounce:
    """One Celery message per dispatcher run, not one per committed transaction."""

    @pytest.fixture
    def published(self, monkeypatch):
        from ops import tasks

        sent = []
        monkeypatch.setattr(tasks.outbox_dispatch_run_task, "apply_async", lambda **kwargs: sent.append(kwargs))
        return sent

    @pytest.mark.redis
    def test_a_queued_nudge_stands_for_later_ones_until_its_dispatcher_starts(self, published):
        from ops.outbox import outbox_nudge, outbox_nudge_taken
        from ops.tasks import outbox_dispatch_run_task

        outbox_nudge_taken()
        for _ in range(3):
            outbox_nudge()
        assert len(published) == 1

        outbox_dispatch_run_task()  # a dispatcher starts: whatever commits from now on must nudge again
        outbox_nudge()
        outbox_nudge()
        assert len(published) == 2

    @pytest.mark.redis
    def test_the_flag_is_set_to_expire_in_case_its_dispatcher_never_starts(self, published):
        from bookings_project.cache import shared_key, shared_redis
        from ops import outbox

        outbox.outbox_nudge_taken()
        outbox.outbox_nudge()
        redis, flag = shared_redis(), shared_key(outbox.NUDGE_PENDING_KEY)
        assert 0 < redis.pttl(flag) <= outbox.NUDGE_PENDING_MS
        redis.delete(flag)  # what Redis does once NUDGE_PENDING_MS have passed
        outbox.outbox_nudge()
        assert len(published) == 2

    def test_without_redis_every_commit_nudges(self, published, settings):
        from ops.outbox import outbox_nudge

        settings.REDIS_URL = ""
        for _ in range(3):
            outbox_nudge()
        assert len(published) == 3

    def test_with_redis_unreachable_it_leaves_delivery_to_the_sweep(self, published, monkeypatch, settings):
        """The broker is that same Redis: publishing would only wait out another timeout (5 s
        on a hung Redis) inside the request. The first failure puts Redis to rest, so the next
        commits do not even try (bookings_project.cache)."""
        import redis

        from bookings_project.cache import redis_resting
        from ops.outbox import outbox_nudge

        calls = []

        class Dead(redis.Redis):
            def set(self, *args, **kwargs):
                calls.append(args)
                return super().set(*args, **kwargs)

        settings.REDIS_URL = "redis://127.0.0.1:1/0"
        dead = Dead(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
        monkeypatch.setattr("django_redis.get_redis_connection", lambda alias: dead)
        outbox_nudge()
        outbox_nudge()
        assert published == [] and len(calls) == 1 and redis_resting()

    def test_a_backlog_asks_for_another_dispatcher_after_each_full_batch(self, published, settings):
        from ops.outbox import DOCUMENT_SYNC

        settings.REDIS_URL = ""
        for _ in range(25):
            outbox_enqueue(event_type=DOCUMENT_SYNC)
        published.clear()

        totals = outbox_dispatch_until_empty(batch_size=10)

        assert (totals["sent"], totals["batches"]) == (25, 3)
        assert len(published) == 2  # after the two full batches, not after the last partial one

    def test_eager_mode_drains_a_backlog_without_nesting_dispatchers(self, settings):
        from celery import current_app

        from ops.outbox import DOCUMENT_SYNC

        settings.REDIS_URL = ""
        for _ in range(25):
            outbox_enqueue(event_type=DOCUMENT_SYNC)
        current_app.conf.task_always_eager = True
        try:
            totals = outbox_dispatch_until_empty(batch_size=2)
        finally:
            current_app.conf.task_always_eager = False
        assert (totals["sent"], totals["batches"]) == (25, 13)  # this dispatcher did it all

    def test_a_dispatcher_out_of_time_hands_the_backlog_to_the_next(self, published, settings):
        from ops.outbox import DOCUMENT_SYNC
        from ops.tasks import outbox_dispatch_run_task

        settings.REDIS_URL = ""
        settings.OUTBOX_DISPATCH_SECONDS = 0  # a worker asked to stop: one batch, then go
        for _ in range(25):
            outbox_enqueue(event_type=DOCUMENT_SYNC)
        published.clear()

        outbox_dispatch_run_task()

        assert OutboxEvent.objects.filter(status=OutboxStatus.SENT).count() == 10
        assert len(published) == 1  # the next dispatcher was asked for
        while OutboxEvent.objects.filter(status=OutboxStatus.PENDING).exists():
            outbox_dispatch_run_task()
        assert OutboxEvent.objects.filter(status=OutboxStatus.SENT).count() == 25


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
    settings.EMAIL_BACKEND = "ops.tests.test_outbox.OneConnectionBackend"
    monkeypatch.setattr(OneConnectionBackend, "sent", [])
    first, second, third = (outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"{name}@example.com",
                                           payload={"subject": "s", "message": "m"})
                            for name in ("first", "second", "third"))

    stats = outbox_dispatch_batch()

    assert (stats["retry"], stats["sent"], stats["deferred"]) == (1, 2, 0)
    second.refresh_from_db()
    assert (second.status, second.retry_count) == (OutboxStatus.PENDING, 1)
    assert OneConnectionBackend.sent == ["first@example.com", "third@example.com"]


def test_an_event_revived_after_the_outage_gets_a_full_set_of_attempts_again(smtp_server, settings):
    """Once a probe went out, the other waiting events are revived with retry_count 0: one more
    failure after the revival is a retry with backoff, not at once DEAD again."""
    from ops.revival import outbox_revive_after_outage

    settings.OUTBOX_MAX_RETRIES = 3
    events = [outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"o{n}@example.com",
                             payload={"subject": "s", "message": "m"}) for n in range(2)]
    smtp_server.stop()
    for _ in range(6):  # one email tries per batch, the other is deferred
        make_due()
        outbox_dispatch_batch()
    assert {(e.status, e.retry_count) for e in OutboxEvent.objects.all()} == {(OutboxStatus.DEAD, 3)}

    smtp_server.start()
    assert outbox_revive_after_outage(probe_every=0) == 2
    [probe] = smtp_server.message_ids()
    other = OutboxEvent.objects.exclude(status=OutboxStatus.SENT).get()
    assert probe == f"<{OutboxEvent.objects.get(status=OutboxStatus.SENT).pk}@bookings.local>"
    assert other.pk in {e.pk for e in events}
    assert (other.status, other.retry_count) == (OutboxStatus.PENDING, 0)

    smtp_server.stop()  # the server goes away again before the dispatcher gets to it
    outbox_dispatch_batch()
    other.refresh_from_db()
    assert (other.status, other.retry_count) == (OutboxStatus.PENDING, 1)
    smtp_server.start()


@pytest.mark.parametrize("trouble", ["451 Requested action aborted: local error", "hangs at DATA"])
def test_a_server_that_accepts_connections_but_does_not_deliver_revives_nothing(smtp_server, settings, trouble):
    """A connection that opens is no evidence the server delivers: a server answering 451 to
    every message, or hanging at DATA, must not make DEAD events cycle DEAD → revived → DEAD,
    losing their retry history each time. Each probe tries one event (in turn) and counts it."""
    from ops.revival import outbox_revive_after_outage

    settings.OUTBOX_MAX_RETRIES = 3
    settings.EMAIL_TIMEOUT = 1
    events = [outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"c{n}@example.com",
                             payload={"subject": "s", "message": "m"}) for n in range(3)]
    OutboxEvent.objects.update(status=OutboxStatus.DEAD, retry_count=3, transient_failure=True,
                               error_message="SMTPServerDisconnected: Connection unexpectedly closed")
    if trouble == "hangs at DATA":
        smtp_server.delay = 3600
    else:
        smtp_server.reply = trouble

    assert outbox_revive_after_outage(probe_every=0) == 0
    assert outbox_revive_after_outage(probe_every=0) == 0

    rows = OutboxEvent.objects.filter(pk__in=[e.pk for e in events])
    assert {row.status for row in rows} == {OutboxStatus.DEAD}  # nothing revived, nothing cycling
    assert sorted(row.retry_count for row in rows) == [3, 4, 4]  # two probes, two different events
    assert all(row.transient_failure and row.claimed_until is None for row in rows)

    smtp_server.delay, smtp_server.reply = 0, None  # it delivers again
    assert outbox_revive_after_outage(probe_every=0) == 3
    outbox_dispatch_until_empty()
    assert {row.status for row in rows.all()} == {OutboxStatus.SENT}
    assert sorted(smtp_server.message_ids()) == sorted(f"<{e.pk}@bookings.local>" for e in events)


def test_a_job_that_sends_nothing_is_no_probe_of_the_mail_server(smtp_server):
    """A DEAD notification job that someone already ran (PUT /jobs/{id}/execute) sends nothing
    when its event runs, and a reconciliation job never sends: neither proves the server delivers."""
    from ops.jobs import job_create_notification, job_create_reconciliation
    from ops.models import Job, JobStatus
    from ops.revival import outbox_revive_after_outage

    done = job_create_notification(recipient_email="done@example.com", subject="s", message="m")
    Job.objects.filter(pk=done.pk).update(status=JobStatus.COMPLETED)
    job_create_reconciliation(entity_type="item")
    email = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="e@example.com",
                           payload={"subject": "s", "message": "m"})
    OutboxEvent.objects.update(status=OutboxStatus.DEAD, retry_count=5, transient_failure=True,
                               next_attempt_at=timezone.now() - timedelta(hours=1))
    OutboxEvent.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())  # the others come first
    smtp_server.stop()

    assert outbox_revive_after_outage(probe_every=0) == 0  # probe: the done job's event, which sent nothing
    email.refresh_from_db()
    assert (email.status, email.retry_count) == (OutboxStatus.DEAD, 5)
    assert OutboxEvent.objects.get(event_type="JOB_RUN", payload__jobId=str(done.pk)).status == OutboxStatus.SENT

    assert outbox_revive_after_outage(probe_every=0) == 0  # probe: the email (the reconciliation is skipped)
    email.refresh_from_db()
    assert (email.status, email.retry_count) == (OutboxStatus.DEAD, 6)
    smtp_server.start()


@pytest.mark.django_db(transaction=True)
def test_a_committed_booking_publishes_one_nudge(make_user, monkeypatch, settings):
    """The commit path itself (real COMMIT, real on_commit hooks): a booking's transaction writes
    several outbox events and asks for exactly one dispatcher, after it commits."""
    from catalog.tests.factories import make_item
    from ops import tasks
    from reservations.services import booking_create

    settings.REDIS_URL = ""  # no debounce flag: every commit that asks, publishes
    published = []
    monkeypatch.setattr(tasks.outbox_dispatch_run_task, "apply_async", lambda **kwargs: published.append(kwargs))
    item = make_item(make_user(roles=["EVENT_ORGANIZER"]), capacity=5, tiers=[("A", "10.00", 5)])
    customer = make_user()
    published.clear()
    before = OutboxEvent.objects.count()

    booking_create(user=customer, item_id=item.pk)

    assert OutboxEvent.objects.count() > before  # the booking wrote its events ...
    assert len(published) == 1  # ... and nudged once, after its commit


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
