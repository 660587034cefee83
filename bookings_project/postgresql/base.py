"""Django's PostgreSQL backend, with two changes: its connection pool's health check, and a
bound on how long a connection waits for a server that stopped answering.

After a database restart every idle pooled connection is dead. psycopg_pool checks the
connection it is about to hand out, and after each failed check sleeps before trying the next
one, doubling the sleep (1, 2, 4, 8 s): a pool of ten dead connections made the first request
of each process wait out its whole timeout (a 503 after 10 s) and later ones seconds more, for
minutes. Here the first failed check makes the pool take all its idle connections out and test
them, one after another, in a background thread (psycopg_pool's `check()`): after a restart
each dead one fails at once and is replaced, so the request's next try gets a fresh connection.
On a network that drops packets instead, each test can take DB_TCP_USER_TIMEOUT_MS; the sweep
then takes that long per connection, in the background, while requests get new connections.

A server that hangs — a frozen process, storage that stopped answering, a proxy in front that
stopped forwarding — leaves its established connections open: the kernel acknowledges every
byte and keepalive, so neither DB_TCP_USER_TIMEOUT_MS nor keepalives fire, and
statement_timeout is the server's own, never enforced by a server that does not run. psycopg has
no client-side timeout, so a query (or the pool's health check, or a COMMIT) waited for ever:
a web thread lost for good per pooled connection (/readyz polled by a load balancer), a worker's
dispatcher held until Celery's time limit (540 s) with emails behind it. So every wait on the
server is registered with a watchdog (`_ServerWaits`); one still waiting DB_HUNG_SERVER_SECONDS
later (statement_timeout + 5 s: a working server has cancelled the statement by then) has its
socket shut down, which ends the wait with an OperationalError (connection lost) — a clean 503,
or an outage the outbox waits out — and the pool drops the connection.
"""

import logging
import os
import socket
import threading
import time
from contextlib import contextmanager

from django.conf import settings
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

logger = logging.getLogger(__name__)


class _Wait:
    __slots__ = ("deadline", "fileno", "lock", "over")

    def __init__(self, deadline: float, fileno: int):
        self.deadline, self.fileno, self.lock, self.over = deadline, fileno, threading.Lock(), False


class _ServerWaits:
    """Connections waiting for their server, and when to stop waiting: a watchdog thread looks
    every TICK seconds and shuts down the socket of one still waiting past its deadline (psycopg
    then raises: the connection is lost). One per process, its thread started on first use
    (after a fork too: Celery's and gunicorn's children each start their own).

    Every statement of every request passes here, so registering a wait takes no lock shared
    between threads and wakes nobody (a Condition notified per wait cost ~14-20 µs of CPU with 8
    threads, against ~2 µs now): a dict entry (atomic under the GIL), and the wait's own lock,
    which only the watchdog may contend for, so a connection whose wait has just ended is never
    shut down. A deadline tens of seconds away needs no better than TICK's precision."""

    TICK = 0.5

    def __init__(self):
        self._reset()
        # A child forked while another thread held the lock would inherit it held for ever.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._start_lock = threading.Lock()
        self._waits: dict[object, _Wait] = {}
        self._pid = None

    def _start_watch(self) -> bool:
        """Whether this process's watchdog runs (started now if need be). A thread that cannot be
        had (the process is out of threads) fails no statement: that wait goes unbounded, and the
        next one tries again."""
        with self._start_lock:
            if self._pid != os.getpid():
                try:
                    threading.Thread(target=self._watch, name="db-server-waits", daemon=True).start()
                except RuntimeError:
                    logger.warning("no thread for the database server watchdog; this wait is unbounded", exc_info=True)
                    return False
                self._pid = os.getpid()
            return True

    @contextmanager
    def bounded(self, fileno: int, seconds: float):
        if self._pid != os.getpid() and not self._start_watch():
            yield
            return
        token, wait = object(), _Wait(time.monotonic() + seconds, fileno)
        self._waits[token] = wait
        try:
            yield
        finally:
            with wait.lock:
                wait.over = True
            del self._waits[token]

    def _watch(self) -> None:
        while True:
            time.sleep(self.TICK)
            now = time.monotonic()
            for wait in self._waits.copy().values():  # (a copy: requests add and remove theirs meanwhile)
                if wait.deadline <= now:
                    with wait.lock:
                        if not wait.over:  # (still waiting: its connection is not back in use)
                            wait.over = True
                            _shut_down(wait.fileno)


def _shut_down(fileno: int) -> None:
    logger.warning("a database server has not answered for %s s; dropping the connection", settings.DB_HUNG_SERVER_SECONDS)
    try:
        sock = socket.socket(fileno=os.dup(fileno))  # (a duplicate: the connection's own fd stays psycopg's)
    except OSError:
        return  # closed meanwhile
    try:
        sock.shutdown(socket.SHUT_RDWR)  # the socket itself, under every fd: psycopg's wait ends
    except OSError:
        pass
    finally:
        sock.close()


_SERVER_WAITS = _ServerWaits()


@contextmanager
def server_wait(conn):
    """Around a call that waits for the server on psycopg connection `conn`: bounded by
    DB_HUNG_SERVER_SECONDS (0: unbounded, as when statement_timeout is off)."""
    seconds = settings.DB_HUNG_SERVER_SECONDS
    try:
        fileno = conn.fileno() if seconds and conn is not None else None
    except Exception:  # noqa: BLE001 - a closed connection: the call fails at once by itself
        fileno = None
    if fileno is None:
        yield
        return
    with _SERVER_WAITS.bounded(fileno, seconds):
        yield


def _bounded_execute(execute, sql, params, many, context):
    with server_wait(context["connection"].connection):
        return execute(sql, params, many, context)


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.execute_wrappers.append(_bounded_execute)  # every statement Django's cursors run

    def _commit(self):
        with server_wait(self.connection):
            return super()._commit()

    def _rollback(self):
        with server_wait(self.connection):
            return super()._rollback()

    def _set_autocommit(self, autocommit):
        with server_wait(self.connection):
            return super()._set_autocommit(autocommit)

    def is_usable(self):
        with server_wait(self.connection):
            return super().is_usable()

    def create_cursor(self, name=None):
        cursor = super().create_cursor(name)
        if type(cursor) is base.ServerSideCursor:  # (a named cursor: QuerySet.iterator(), streamed exports)
            cursor.__class__ = _BoundedServerSideCursor
        return cursor

    @property
    def pool(self):
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if (self.alias == NO_DB_ALIAS or self.alias in self._connection_pools or not pool_options
                or not self.settings_dict["CONN_HEALTH_CHECKS"]):
            return super().pool
        if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
            return super().pool  # (Django refuses this combination)
        # As Django builds it (django.db.backends.postgresql.base), but with the sweeping check.
        sweeper = _Sweeper()
        pool = ConnectionPool(kwargs={**self.get_connection_params(), "autocommit": True}, open=False,
                              configure=self._configure_connection, check=sweeper.check,
                              **({} if pool_options is True else pool_options))
        sweeper.pool = pool
        self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]


class _BoundedServerSideCursor(base.ServerSideCursor):
    """A named (server-side) cursor whose fetches and close wait for the server under the same
    bound: each is a round trip (FETCH, CLOSE) that Django's execute wrappers never see, so a
    QuerySet.iterator() or a streamed export over a hung server waited for ever."""

    __slots__ = ()

    def fetchone(self):
        with server_wait(self._conn):
            return super().fetchone()

    def fetchmany(self, size=0):
        with server_wait(self._conn):
            return super().fetchmany(size)

    def fetchall(self):
        with server_wait(self._conn):
            return super().fetchall()

    def scroll(self, value, mode="relative"):
        with server_wait(self._conn):
            return super().scroll(value, mode)

    def close(self):
        with server_wait(self._conn):
            return super().close()

    def __iter__(self):
        while rows := self.fetchmany(self.itersize):
            yield from rows


class _Sweeper:
    """The pool's health check: the usual empty round trip; when it fails, every idle
    connection of the pool is tested and the dead ones replaced, once at a time per pool."""

    def __init__(self):
        self.pool: ConnectionPool | None = None
        self._sweeping = threading.Lock()

    def check(self, conn) -> None:
        try:
            with server_wait(conn):
                ConnectionPool.check_connection(conn)
        except Exception:
            self._sweep()
            raise

    def _sweep(self) -> None:
        if self.pool is None or not self._sweeping.acquire(blocking=False):
            return  # one sweep at a time: it covers every connection idle when it started
        logger.warning("pool %s: a pooled connection is dead; testing all idle ones", self.pool.name)

        def sweep():
            try:
                self.pool.check()
            except Exception:  # noqa: BLE001 - the pool replaces what it can; requests go on
                logger.warning("pool %s: sweep failed", self.pool.name, exc_info=True)
            finally:
                self._sweeping.release()

        try:
            threading.Thread(target=sweep, name=f"pool-sweep-{self.pool.name}", daemon=True).start()
        except RuntimeError:  # no thread to be had (interpreter shutting down): the next failure tries again
            self._sweeping.release()
