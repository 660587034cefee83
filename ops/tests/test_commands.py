"""Operator commands fail with one clear line, never a traceback; `dispatch_outbox --loop` waits
out a database outage; the nightly reconciliation task retries a database error."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, OperationalError, ProgrammingError

from ops.management.commands import dispatch_outbox, reconcile
from ops.models import Job, JobStatus
from ops.tasks import reconciliation_schedule_all_task

IDLE = {"claimed": 0, "sent": 0, "retry": 0, "deferred": 0, "dead": 0, "batches": 0, "revived": 0}


def manage(*args, **env):
    """Run manage.py in a subprocess (exit code and stderr as an operator sees them)."""
    return subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


# --- argument validation ------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--batch-size", "-1"], "must be from 1 to 1000, got -1"),
    (["--batch-size", "0"], "must be from 1 to 1000, got 0"),
    (["--batch-size", "99999999999999999999"], "must be from 1 to 1000"),
    (["--batch-size", "ten"], "expected a whole number"),
    (["--loop", "--interval", "-1"], "must be from 0 to 3600, got -1"),
    (["--loop", "--interval", "nan"], "must be from 0 to 3600, got nan"),
    (["--loop", "--interval", "86400"], "must be from 0 to 3600"),
])
def test_dispatch_outbox_rejects_out_of_range_arguments(args, message, monkeypatch):
    monkeypatch.setattr(dispatch_outbox, "outbox_dispatch_run", lambda **kw: pytest.fail("dispatched"))
    with pytest.raises(CommandError, match=message):
        call_command("dispatch_outbox", *args)


@pytest.mark.django_db(databases=["default", "documents"])
@pytest.mark.parametrize("value", ["0", "-5", "10001"])
def test_reconcile_rejects_a_bad_batch_size_before_creating_a_job(value):
    with pytest.raises(CommandError, match="--batch-size: must be from 1 to 10000"):
        call_command("reconcile", "--entity-type", "item", "--batch-size", value, "--no-progress")
    assert not Job.objects.exists()


@pytest.mark.django_db(databases=["default", "documents"])
@pytest.mark.parametrize("value, message", [
    ("", "--entity-id: must not be blank"),   # used to run a job recorded as the whole type
    ("   ", "--entity-id: must not be blank"),
    ("9" * 65, "--entity-id: must be at most 64 characters, got 65"),
])
def test_reconcile_rejects_a_blank_or_overlong_entity_id_before_creating_a_job(value, message):
    with pytest.raises(CommandError, match=message):
        call_command("reconcile", "--entity-type", "item", "--entity-id", value, "--no-progress")
    assert not Job.objects.exists()


@pytest.mark.django_db(databases=["default", "documents"])
def test_reconcile_trims_the_entity_id_as_the_api_does(capsys):
    call_command("reconcile", "--entity-type", "item", "--entity-id", " 424242 ", "--no-progress")
    assert Job.objects.get().params["entityId"] == "424242"
    assert "No item 424242 in either database: nothing to reconcile." in capsys.readouterr().out


def test_a_bad_argument_is_a_usage_error_on_the_command_line(tmp_path):
    run = manage("dispatch_outbox", "--batch-size", "-1", VAR_DIR=str(tmp_path))
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "error: argument --batch-size: must be from 1 to 1000, got -1" in run.stderr


# --- failures after the job is claimed ----------------------------------------------------------

@pytest.mark.django_db(databases=["default", "documents"])
def test_reconcile_finishes_its_job_as_failed_when_the_run_fails(monkeypatch):
    def broken_batches(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("ops.reconciliation.relational_batches", broken_batches)
    monkeypatch.setattr(reconcile, "reconciliation_steps", lambda **kwargs: 10)
    with pytest.raises(CommandError, match=r"Reconciliation failed \(job [-0-9a-f]+\): ZeroDivisionError: division by zero"):
        call_command("reconcile", "--entity-type", "item", "--no-progress")
    job = Job.objects.get(params__trigger="cli")
    assert job.status == JobStatus.FAILED  # not left `running`
    assert job.error_message == "ZeroDivisionError: division by zero"


@pytest.mark.django_db(databases=["default", "documents"])
def test_a_shell_run_s_job_is_running_from_its_first_moment(monkeypatch):
    """Never `queued` with no worker event to run it, never claimable by an execute meanwhile."""
    import ops.reconciliation

    seen = []
    real = ops.reconciliation.reconciliation_run

    def watching(**kwargs):
        seen.append(Job.objects.values_list("status", "attempts").get(pk=kwargs["job"].pk))
        return real(**kwargs)

    monkeypatch.setattr(ops.reconciliation, "reconciliation_run", watching)
    call_command("reconcile", "--entity-type", "item", "--no-progress")
    assert seen == [(JobStatus.RUNNING, 1)]
    assert Job.objects.get().status == JobStatus.COMPLETED


@pytest.mark.django_db(databases=["default", "documents"])
def test_reconcile_of_an_id_neither_database_holds_says_so(capsys):
    call_command("reconcile", "--entity-type", "item", "--entity-id", "999999", "--no-progress")
    assert capsys.readouterr().out.splitlines()[-1] == "No item 999999 in either database: nothing to reconcile."


@pytest.mark.django_db(databases=["default", "documents"])
def test_reconcile_interrupted_while_counting_leaves_no_job(monkeypatch):
    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reconcile, "reconciliation_steps", interrupted)
    with pytest.raises(CommandError, match="Reconciliation not started"):
        call_command("reconcile", "--entity-type", "item", "--no-progress")
    assert not Job.objects.exists()


@pytest.mark.django_db(databases=["default", "documents"])
def test_reconcile_finishes_its_job_as_failed_when_interrupted(monkeypatch):
    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("ops.reconciliation.reconciliation_run", interrupted)
    with pytest.raises(CommandError, match="Reconciliation failed"):
        try:
            call_command("reconcile", "--entity-type", "item", "--no-progress")
        except KeyboardInterrupt:
            pytest.fail("Ctrl-C escaped the command")
    assert Job.objects.get(params__trigger="cli").status == JobStatus.FAILED


# --- database unavailable -----------------------------------------------------------------------

def test_dispatch_outbox_reports_an_unavailable_database(monkeypatch):
    def down(**kwargs):
        raise OperationalError("connection refused\n\tIs the server running?")

    monkeypatch.setattr(dispatch_outbox, "outbox_dispatch_run", down)
    with pytest.raises(CommandError) as raised:
        call_command("dispatch_outbox")
    assert str(raised.value) == "Database unavailable: connection refused Is the server running?"


def test_reconcile_reports_an_unavailable_database(monkeypatch):
    def down(**kwargs):
        raise OperationalError("couldn't get a connection after 10.00 sec")

    monkeypatch.setattr(reconcile, "reconciliation_steps", down)
    with pytest.raises(CommandError, match="^Database unavailable: couldn't get a connection"):
        call_command("reconcile", "--entity-type", "item", "--no-progress")


@pytest.mark.parametrize("command", [["dispatch_outbox"], ["reconcile", "--entity-type", "item", "--no-progress"],
                                     ["seed_demo", "--if-empty"]])
def test_commands_fail_in_one_line_while_postgres_is_down(command, tmp_path):
    pytest.importorskip("psycopg")
    run = manage(*command, VAR_DIR=str(tmp_path), DATABASE_URL="postgres://postgres@127.0.0.1:1/x",
                 DB_POOL_TIMEOUT="1")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr  # (the pool may log its connection attempts first)
    # The pool's reconnect thread may still log (several lines) after the command's own message.
    assert any(line.startswith("CommandError: Database unavailable: ") for line in run.stderr.splitlines())


# --- database not migrated ---------------------------------------------------------------------

@pytest.mark.parametrize("command", [["dispatch_outbox"], ["reconcile", "--entity-type", "item", "--no-progress"],
                                     ["prune_history"], ["seed_demo"]])
def test_commands_on_a_database_never_migrated_say_so_in_one_line(command, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DOCUMENTS_DATABASE_URL"}}
    run = subprocess.run([sys.executable, "manage.py", *command], cwd=settings.BASE_DIR, capture_output=True,
                         text=True, timeout=60, env={**env, "VAR_DIR": str(tmp_path)})  # fresh, empty SQLite files
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith("CommandError: Database not migrated: no such table: ")
    assert "run `make migrate`" in run.stderr


def test_a_missing_postgresql_table_is_one_line_not_a_traceback(monkeypatch):
    """On PostgreSQL a missing table is a ProgrammingError (42P01), which escaped as a traceback."""

    class UndefinedTable(Exception):
        sqlstate = "42P01"

    def unmigrated(**kwargs):
        try:
            raise UndefinedTable('relation "outbox_events" does not exist')
        except UndefinedTable as cause:
            raise ProgrammingError('relation "outbox_events" does not exist\nLINE 1: SELECT 1 AS "a" FROM '
                                   '"outbox_events" WHERE ...\n                             ^') from cause

    monkeypatch.setattr(dispatch_outbox, "outbox_dispatch_run", unmigrated)
    with pytest.raises(CommandError) as raised:
        call_command("dispatch_outbox")
    assert str(raised.value) == ('Database not migrated: relation "outbox_events" does not exist — run `make migrate` '
                                 '(manage.py migrate, then manage.py migrate --database documents)')


def test_other_database_errors_are_not_dressed_up_as_an_outage(monkeypatch):
    def bug(**kwargs):
        raise ProgrammingError("syntax error at or near \"SELEC\"")

    monkeypatch.setattr(dispatch_outbox, "outbox_dispatch_run", bug)
    with pytest.raises(ProgrammingError):
        call_command("dispatch_outbox")


class Loop:
    """Stands in for the dispatcher and for sleep: `outcomes` are what each batch does (an
    exception to raise, or stats to return); the loop is stopped like Ctrl-C stops it, from the
    sleep after the last outcome."""

    def __init__(self, monkeypatch, outcomes):
        self.outcomes = list(outcomes)
        self.batches = 0
        self.sleeps = []
        self.closed = 0
        monkeypatch.setattr(dispatch_outbox, "outbox_dispatch_run", self.dispatch)
        monkeypatch.setattr(dispatch_outbox, "sleep", self.sleep)
        monkeypatch.setattr(dispatch_outbox.connections, "close_all", self.close_all)

    def dispatch(self, *, max_seconds, batch_size, nudge):
        assert nudge is False  # the command is the dispatcher: no Celery messages
        self.batches += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        if not self.outcomes:
            raise KeyboardInterrupt

    def close_all(self):
        self.closed += 1


def test_dispatch_loop_survives_a_database_outage(monkeypatch, capsys):
    down = OperationalError("server closed the connection unexpectedly")
    loop = Loop(monkeypatch, [down, down, {**IDLE, "claimed": 1, "sent": 1}, IDLE])

    call_command("dispatch_outbox", "--loop", "--interval", "5")

    assert loop.batches == 4  # it went on after both errors
    assert loop.sleeps == [1, 2, 5]  # backed off, then idled at the normal interval
    assert loop.closed == 2  # a fresh connection after each error
    out, err = capsys.readouterr()
    assert "claimed 1: sent 1" in out
    assert err.count("Database unavailable: server closed the connection unexpectedly; retrying in") == 2


def test_dispatch_loop_backoff_is_capped_and_resets_after_a_batch(monkeypatch):
    down = OperationalError("connection refused")
    loop = Loop(monkeypatch, [down] * 7 + [IDLE, down])

    call_command("dispatch_outbox", "--loop", "--interval", "0")

    assert loop.sleeps == [1, 2, 4, 8, 16, 30, 30, 0, 1]


# --- nightly reconciliation task ----------------------------------------------------------------

def test_nightly_reconciliation_task_retries_a_database_error(monkeypatch):
    calls = []

    def schedule_all():
        calls.append(1)
        if len(calls) == 1:
            raise DatabaseError("could not connect to server")
        return []

    monkeypatch.setattr("ops.tasks.reconciliation_schedule_all", schedule_all)
    result = reconciliation_schedule_all_task.apply()
    assert result.successful() and len(calls) == 2


def test_nightly_reconciliation_task_gives_up_after_its_retries(monkeypatch):
    calls = []

    def schedule_all():
        calls.append(1)
        raise OperationalError("could not connect to server")

    monkeypatch.setattr("ops.tasks.reconciliation_schedule_all", schedule_all)
    result = reconciliation_schedule_all_task.apply(throw=False)
    assert result.failed() and isinstance(result.result, OperationalError)
    assert len(calls) == 11  # the first run and ten retries
    assert reconciliation_schedule_all_task.retry_backoff and reconciliation_schedule_all_task.retry_backoff_max == 600


# --- status -------------------------------------------------------------------------------------

def _status(*args) -> tuple[str, CommandError | None]:
    from io import StringIO

    out = StringIO()
    try:
        call_command("status", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


@pytest.mark.django_db(databases=["default", "documents"])
def test_status_of_a_healthy_system_needs_nobody():
    from ops.jobs import job_create_reconciliation, job_execute

    for entity_type in ("item", "booking"):
        job_execute(job_id=job_create_reconciliation(entity_type=entity_type).pk)
    from ops.dispatch import outbox_dispatch_until_empty

    outbox_dispatch_until_empty()  # (the jobs' own JOB_RUN events: nothing left waiting)

    text, failed = _status("--check")

    assert failed is None, text
    assert "database ok · documents ok · broker ok" in text and "0 pending (0 due) · 0 dead" in text
    assert "booking 20" in text and " s ago)" in text and text.rstrip().endswith("nothing needs an operator")


@pytest.mark.django_db(databases=["default", "documents"])
def test_status_names_what_needs_an_operator_and_check_fails():
    from datetime import timedelta

    from django.utils import timezone

    from ops.models import JobType, OutboxEvent, OutboxStatus

    now = timezone.now()
    OutboxEvent.objects.create(event_type="GENERIC", status=OutboxStatus.DEAD)
    OutboxEvent.objects.create(event_type="GENERIC", next_attempt_at=now - timedelta(minutes=10))
    Job.objects.create(type=JobType.NOTIFICATION, status=JobStatus.FAILED)
    Job.objects.create(type=JobType.RECONCILIATION, status=JobStatus.COMPLETED, completed_at=now - timedelta(days=3),
                       params={"entityType": "launch", "entityId": None})

    text, failed = _status()
    assert failed is None  # (without --check it only tells)
    text, failed = _status("--check")

    assert isinstance(failed, CommandError) and "5 problem(s)" in str(failed)
    assert "1 pending (1 due, the oldest for 10 min) · 1 dead" in text
    assert "NOTIFICATION: 0 queued · 0 running · 1 failed" in text
    for problem in ("outbox delivery stalled: an event has been due for 10 min", "1 DEAD outbox event(s)",
                    "1 failed NOTIFICATION job(s)", "the last whole item reconciliation completed 3 d ago",
                    "no whole booking reconciliation has completed yet"):
        assert f"needs an operator: {problem}" in text, text


@pytest.mark.django_db(databases=["default", "documents"])
def test_status_with_the_database_down_says_so_and_nothing_else(broken_database):
    broken_database("default")
    text, failed = _status("--check")

    assert text.splitlines()[0].startswith("dependencies") and "database DOWN · documents ok" in text
    assert "outbox" not in text and "needs an operator: database is not answering" in text
    assert isinstance(failed, CommandError) and "1 problem(s)" in str(failed)


@pytest.mark.django_db(databases=["default", "documents"])
def test_status_with_the_broker_down_names_its_error_in_one_line_without_a_logged_traceback(settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/15"  # nothing listens there: refused at once
    caplog.set_level("DEBUG")

    text, failed = _status("--check")

    assert "broker DOWN" in text and "outbox" in text  # (the databases answer: the rest is reported)
    problem = next(line for line in text.splitlines() if line.startswith("needs an operator: broker"))
    assert problem.startswith("needs an operator: broker is not answering: ") and "127.0.0.1:1" in problem
    assert isinstance(failed, CommandError)
    # It used to log the readiness check's failure, traceback and all, onto the operator's terminal.
    assert not [record for record in caplog.records if record.name == "ops.health"], caplog.text


@pytest.mark.django_db(databases=["default", "documents"])
def test_ctrl_c_in_dispatch_outbox_hands_the_batch_back_at_once(smtp_server, monkeypatch, settings):
    """Ctrl-C while a batch is out (a mail server that hangs, say): the command ends quietly and
    the batch's events are due again now. They stayed claimed — hidden from every dispatcher,
    workers included — for the whole lease (OUTBOX_LEASE_SECONDS, 10 minutes by default)."""
    from django.utils import timezone

    from ops import handlers
    from ops.models import OutboxEvent, OutboxStatus
    from ops.outbox import EventType, outbox_enqueue

    settings.OUTBOX_LEASE_SECONDS = 600
    events = [outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"c{n}@example.com",
                             payload={"subject": "s", "message": "m"}) for n in range(3)]
    real, sent = handlers._send_email, []

    def interrupted_at_the_second(event, ctx):
        if sent:
            raise KeyboardInterrupt
        real(event, ctx)
        sent.append(event.pk)

    monkeypatch.setitem(handlers.__dict__, "_send_email", interrupted_at_the_second)
    call_command("dispatch_outbox", "--loop")

    rows = {row.pk: row for row in OutboxEvent.objects.all()}
    assert rows[sent[0]].status == OutboxStatus.SENT
    for event in events:
        if event.pk != sent[0]:
            row = rows[event.pk]
            assert (row.status, row.retry_count, row.claimed_until) == (OutboxStatus.PENDING, 0, None)
            assert row.next_attempt_at <= timezone.now()


class _Unhandled(BaseException):
    """Raised by the test's own handler when the command left a signal to its default action
    (which would have killed the process — here, pytest — on the spot)."""


@pytest.fixture
def signal_guard():
    import signal

    def unhandled(signum, frame):
        raise _Unhandled(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, unhandled) for sig in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@pytest.mark.django_db(databases=["default", "documents"])
@pytest.mark.parametrize("signame, args", [("SIGTERM", ["--loop"]), ("SIGHUP", ["--loop"]), ("SIGTERM", [])])
def test_sigterm_or_sighup_in_dispatch_outbox_hands_the_batch_back_as_ctrl_c_does(
        smtp_server, monkeypatch, settings, signal_guard, signame, args):
    """systemd or docker stopping `dispatch_outbox --loop` (SIGTERM), or the SSH session it ran
    in dropping (SIGHUP), killed it mid-batch: the batch's events stayed claimed, hidden from
    every dispatcher, for the whole lease (10 minutes by default). One batch interrupted says so
    in one line (exit 1)."""
    import signal

    from django.utils import timezone

    from ops import handlers
    from ops.models import OutboxEvent, OutboxStatus
    from ops.outbox import EventType, outbox_enqueue

    settings.OUTBOX_LEASE_SECONDS = 600
    events = [outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"s{n}@example.com",
                             payload={"subject": "s", "message": "m"}) for n in range(3)]
    real, sent = handlers._send_email, []

    def signalled_at_the_second(event, ctx):
        if sent:
            os.kill(os.getpid(), getattr(signal, signame))
        real(event, ctx)
        sent.append(event.pk)

    monkeypatch.setitem(handlers.__dict__, "_send_email", signalled_at_the_second)
    if args:
        call_command("dispatch_outbox", *args)
    else:
        with pytest.raises(CommandError, match=f"Dispatch interrupted \\(stopped by {signame}\\)"):
            call_command("dispatch_outbox")

    rows = {row.pk: row for row in OutboxEvent.objects.all()}
    assert rows[sent[0]].status == OutboxStatus.SENT
    for event in events:
        if event.pk != sent[0]:
            row = rows[event.pk]
            assert (row.status, row.retry_count, row.claimed_until) == (OutboxStatus.PENDING, 0, None)
            assert row.next_attempt_at <= timezone.now()
    # The command put the handlers back as it found them.
    assert signal.getsignal(signal.SIGTERM).__qualname__.endswith("unhandled")
