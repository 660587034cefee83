"""ops.revival: events that went DEAD only because the mail server was away go out again once a
probe is delivered, with a full set of attempts; a server that connects but does not deliver
revives nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ops.dispatch import outbox_dispatch_batch, outbox_dispatch_until_empty
from ops.models import OutboxEvent, OutboxStatus
from ops.outbox import EventType, outbox_enqueue
from ops.tests.factories import make_due

pytestmark = pytest.mark.django_db


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

    # The done job's event sent nothing (done with it); the probe went on to the email (the
    # reconciliation is skipped), which the server still refuses: nothing revived.
    assert outbox_revive_after_outage(probe_every=0) == 0
    assert OutboxEvent.objects.get(event_type="JOB_RUN", payload__jobId=str(done.pk)).status == OutboxStatus.SENT
    email.refresh_from_db()
    assert (email.status, email.retry_count) == (OutboxStatus.DEAD, 6)
    smtp_server.start()


def test_a_password_reset_for_an_account_gone_since_is_no_probe_of_the_mail_server(smtp_server, make_user):
    """A DEAD reset email whose account was deactivated since sends nothing when its event runs
    (accounts.password_reset.password_reset_email_context): that proves nothing about the server, so it
    must not revive the other DEAD emails into a server that is still away."""
    from accounts.models import User
    from ops.revival import outbox_revive_after_outage

    gone = make_user(email="gone@example.com")
    reset = outbox_enqueue(event_type=EventType.PASSWORD_RESET, recipient_email=gone.email,
                           payload={"userId": gone.pk})
    email = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="e@example.com",
                           payload={"subject": "s", "message": "m"})
    OutboxEvent.objects.update(status=OutboxStatus.DEAD, retry_count=5, transient_failure=True,
                               next_attempt_at=timezone.now() - timedelta(hours=1))
    OutboxEvent.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())  # the reset comes first
    User.objects.filter(pk=gone.pk).update(is_active=False)
    smtp_server.stop()

    # The reset sent nothing (done with it); the probe went on to the email, which the server
    # still refuses: nothing revived.
    assert outbox_revive_after_outage(probe_every=0) == 0
    assert OutboxEvent.objects.get(pk=reset.pk).status == OutboxStatus.SENT  # nothing left to send
    email.refresh_from_db()
    assert (email.status, email.retry_count) == (OutboxStatus.DEAD, 6)
    smtp_server.start()


@pytest.mark.django_db(databases=["default", "documents"])
def test_events_with_nothing_left_to_send_do_not_hold_up_the_revival(smtp_server, make_user, organizer):
    """After an outage, reminders of bookings cancelled or started since (reservations.reminders)
    send nothing: no evidence, but no contact with the server either. The probe goes on to the
    next waiting event in the same turn, instead of spending a turn (30 s) on each of them while
    every other DEAD email waits — a day's outage left a day of such reminders ahead of them."""
    from catalog.tests.factories import make_item
    from ops.revival import outbox_revive_after_outage
    from reservations.reminders import booking_reminders_enqueue
    from reservations.services import booking_cancel
    from reservations.tests.factories import book

    item = make_item(organizer, start=timezone.now() + timedelta(hours=3), capacity=5)
    customers = [make_user() for _ in range(4)]
    bookings = [book(customer, item, booked_at=timezone.now() - timedelta(days=7)) for customer in customers]
    assert booking_reminders_enqueue() == 4
    for customer, booking in zip(customers, bookings):
        booking_cancel(actor=customer, booking_id=booking.pk)
    email = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="e@example.com",
                           payload={"subject": "s", "message": "m"})
    OutboxEvent.objects.exclude(event_type__in=[EventType.BOOKING_REMINDER, EventType.GENERIC]).update(
        status=OutboxStatus.SENT)
    OutboxEvent.objects.exclude(status=OutboxStatus.SENT).update(
        status=OutboxStatus.DEAD, retry_count=5, transient_failure=True, next_attempt_at=timezone.now() - timedelta(hours=1))
    OutboxEvent.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())  # the reminders come first

    assert outbox_revive_after_outage(probe_every=0) == 1  # the email, the probe: delivered
    assert [m["message"]["To"] for m in smtp_server.messages] == ["e@example.com"]
    assert set(OutboxEvent.objects.filter(event_type=EventType.BOOKING_REMINDER).values_list("status", flat=True)) == {
        OutboxStatus.SENT}


def test_reconciliation_runs_waiting_first_do_not_keep_a_notification_job_from_probing(smtp_server):
    """Reconciliation runs never send an email, so they are passed over as probes; however many
    of them wait ahead, the probe still reaches the notification job (it looked at five only,
    and with six reconciliation runs first no probe ever ran: nothing revived on its own)."""
    from ops.jobs import job_create_notification, job_create_reconciliation
    from ops.revival import outbox_revive_after_outage

    for _ in range(8):
        job_create_reconciliation(entity_type="item")
    notification = job_create_notification(recipient_email="n@example.com", subject="s", message="m")
    OutboxEvent.objects.update(status=OutboxStatus.DEAD, retry_count=5, transient_failure=True,
                               next_attempt_at=timezone.now() - timedelta(hours=1))
    OutboxEvent.objects.filter(payload__jobId=str(notification.pk)).update(next_attempt_at=timezone.now())

    waiting = OutboxEvent.objects.filter(status=OutboxStatus.DEAD).count()

    assert outbox_revive_after_outage(probe_every=0) == waiting  # the job's email went out (its run SENT), the rest revived
    assert [m["to"] for m in smtp_server.messages] == [["n@example.com"]]


def test_a_mail_outage_of_hours_never_stops_the_dispatcher(smtp_server, settings):
    """Every failed probe counts an attempt (retry_count goes past OUTBOX_MAX_RETRIES), and the
    probe runs every 30 s whatever the event's backoff: one DEAD event during a mail outage of
    half an hour reached 45 failures, where 2 ** 44 backoff seconds no longer fit a timedelta.
    The OverflowError escaped the probe and failed every dispatcher run before it claimed
    anything: no email, document sync or job went out until an operator stepped in."""
    from django.core.cache import cache

    from ops.dispatch import outbox_dispatch_run
    from ops.revival import SMTP_PROBE_KEY

    settings.OUTBOX_MAX_RETRIES = 3
    event = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="o@example.com",
                           payload={"subject": "s", "message": "m"})
    smtp_server.stop()
    OutboxEvent.objects.filter(pk=event.pk).update(status=OutboxStatus.DEAD, transient_failure=True, retry_count=60)
    other = OutboxEvent.objects.create(event_type="NO_SUCH_TYPE")  # (anything due: its batch must run)

    for _ in range(2):
        cache.delete(SMTP_PROBE_KEY)  # (30 s later: the probe's turn again)
        outbox_dispatch_run(max_seconds=0, nudge=False)

    event.refresh_from_db()
    other.refresh_from_db()
    assert (event.status, event.retry_count) == (OutboxStatus.DEAD, 62)
    assert event.next_attempt_at <= timezone.now() + timedelta(hours=1)
    assert other.status == OutboxStatus.DEAD  # (the batch ran)
    smtp_server.start()
