"""A PostgreSQL server that hangs with its connections open (a frozen process, storage that
stopped answering): the kernel acknowledges every byte and keepalive, so only the client can
stop waiting (bookings_project.postgresql, DB_HUNG_SERVER_SECONDS). Without that bound a
statement, a COMMIT or the pool's check of a pooled connection waited for ever."""

import threading
import time
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connections

from bookings_project.testing import HangingProxy

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def proxy():
    if connections["documents"].vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    s = connections["documents"].settings_dict
    proxy = HangingProxy((s["HOST"] or "127.0.0.1", int(s["PORT"] or 5432)))
    yield proxy
    proxy.close()


@pytest.fixture
def hung_after(settings):
    settings.DB_HUNG_SERVER_SECONDS = 1


@contextmanager
def through(proxy, alias):
    """A connection (pooled: at most 2, a 2 s wait) to the test documents database through
    `proxy`, closed with its pool afterwards."""
    from bookings_project.postgresql.base import DatabaseWrapper

    s = connections["documents"].settings_dict
    options = {**s["OPTIONS"], "connect_timeout": 1, "pool": {"min_size": 0, "max_size": 2, "timeout": 2}}
    db = DatabaseWrapper({**s, "HOST": "127.0.0.1", "PORT": proxy.port, "OPTIONS": options}, alias)
    try:
        yield db
    finally:
        try:
            db.close()
        finally:
            db.close_pool()


def timed(call):
    """(the OperationalError `call()` ended with, or None; the seconds it took)."""
    started = time.monotonic()
    try:
        call()
    except OperationalError as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def within(seconds, scenario):
    """Run `scenario()` in a thread (a connection belongs to its thread); its outcome, or a
    failure if it is still waiting after `seconds` (the thread is left behind)."""
    outcome = {}

    def run():
        try:
            outcome["result"] = scenario()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting for the hung server after {seconds} s"
    return outcome, time.monotonic() - started


@pytest.mark.django_db(databases=["documents"])
@pytest.mark.parametrize("wait", ["statement", "commit", "pool check"])
def test_a_server_that_hangs_with_the_connection_open_is_given_up_on(proxy, hung_after, wait):
    alias = f"hung-{wait.replace(' ', '-')}"

    def scenario():
        with through(proxy, alias) as db:
            with db.cursor() as cursor:
                cursor.execute("SELECT 1")  # connected, pooled
            if wait == "pool check":
                db.close()  # back to the pool: the next checkout checks it first
            elif wait == "commit":
                db.set_autocommit(False)
                with db.cursor() as cursor:
                    cursor.execute("SELECT 1")
            proxy.hung = True
            if wait == "commit":
                return timed(db.commit)
            return timed(lambda: db.cursor().execute("SELECT 1"))

    outcome, _ = within(15, scenario)
    assert "error" not in outcome, outcome.get("error")
    error, waited = outcome["result"]
    assert isinstance(error, OperationalError)
    # The bound (1 s), plus for the pool check a fresh connection's connect timeout (1 s) and
    # the pool's wait (2 s): never the server's say.
    assert waited < (5 if wait == "pool check" else 3)


@pytest.mark.django_db(databases=["documents"])
def test_a_server_side_cursor_fetch_from_a_hung_server_is_given_up_on(proxy, hung_after):
    """QuerySet.iterator() and a streamed export read through a named cursor: each FETCH is a
    round trip of its own, outside Django's execute wrappers."""

    def scenario():
        with through(proxy, "hung-fetch") as db:
            db.set_autocommit(False)
            cursor = db.chunked_cursor()
            cursor.execute("SELECT generate_series(1, 10)")  # DECLARE: the rows stay on the server
            proxy.hung = True
            return timed(lambda: cursor.fetchmany(5))

    outcome, _ = within(8, scenario)
    assert "error" not in outcome, outcome.get("error")
    error, waited = outcome["result"]
    assert isinstance(error, OperationalError) and waited < 3


@pytest.mark.django_db(databases=["documents"])
def test_a_server_side_cursor_reads_every_row(settings):
    if connections["documents"].vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    from django.db import transaction

    with transaction.atomic(using="documents"):
        cursor = connections["documents"].chunked_cursor()
        cursor.execute("SELECT generate_series(1, 5)")
        assert [row[0] for row in cursor.fetchmany(2)] + [row[0] for row in cursor.fetchall()] == [1, 2, 3, 4, 5]
        cursor.close()


@pytest.mark.django_db(databases=["documents"])
def test_a_working_slow_statement_is_not_cut_short(proxy, settings):
    """The bound is above the server's statement_timeout: it only ever ends a wait the server
    itself would have ended had it been running."""
    settings.DB_HUNG_SERVER_SECONDS = 3

    def scenario():
        with through(proxy, "hung-slow") as db, db.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(1.5)")
            cursor.execute("SELECT 1")
            return cursor.fetchone()[0]

    outcome, _ = within(15, scenario)
    assert outcome == {"result": 1}


@pytest.mark.django_db(transaction=True, databases=["default", "documents"])
def test_document_syncs_against_a_hung_documents_database_are_deferred_and_emails_go_out(
        proxy, hung_after, smtp_server):
    """The worker's side: a dispatcher whose documents connection hangs must not be held until
    Celery's time limit (540 s) with every later email behind it."""
    from ops.dispatch import outbox_dispatch_batch
    from ops.models import OutboxEvent, OutboxStatus
    from ops.outbox import EventType, document_sync_event, outbox_enqueue, outbox_enqueue_many

    docs = connections["documents"]
    original = dict(docs.settings_dict)
    docs.close()
    docs.close_pool()
    docs.settings_dict.update(HOST="127.0.0.1", PORT=proxy.port,
                              OPTIONS={**original["OPTIONS"], "connect_timeout": 1,
                                       "pool": {"min_size": 0, "max_size": 2, "timeout": 2}})
    try:
        from django.db import connections as threads_connections

        threads_connections["documents"].ensure_connection()  # a pooled connection, open
        threads_connections["documents"].close()
        proxy.hung = True
        syncs = outbox_enqueue_many([document_sync_event(("item", n)) for n in (1, 2)])
        email = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="d@example.com",
                               payload={"subject": "s", "message": "m"})

        outcome, waited = within(20, lambda: outbox_dispatch_batch(batch_size=10))
    finally:
        docs.close()
        docs.close_pool()
        docs.settings_dict.clear()
        docs.settings_dict.update(original)

    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"]["sent"] == 1 and outcome["result"]["deferred"] == 2
    assert waited < 8
    assert OutboxEvent.objects.get(pk=email.pk).status == OutboxStatus.SENT
    for sync in OutboxEvent.objects.filter(pk__in=[e.pk for e in syncs]):
        assert (sync.status, sync.retry_count) == (OutboxStatus.PENDING, 0)


def test_a_watchdog_thread_that_cannot_be_started_fails_no_statement(monkeypatch):
    """A process out of threads (a pile of probe threads, a ulimit): the statement runs unbounded
    rather than failing with RuntimeError (a 500), and a later wait starts the watchdog."""
    from bookings_project.postgresql.base import _ServerWaits

    waits = _ServerWaits()
    real_start = threading.Thread.start

    def no_thread(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    with waits.bounded(fileno=-1, seconds=30):
        pass
    assert not waits._waits
    monkeypatch.setattr(threading.Thread, "start", real_start)
    with waits.bounded(fileno=-1, seconds=30):
        assert len(waits._waits) == 1
    assert not waits._waits and any(t.name == "db-server-waits" for t in threading.enumerate())
