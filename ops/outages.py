"""Riding out a short outage of the main database inside a live worker.

A dispatcher or a job run that could not write its outcome (the database restarting, a
connection dropped) is still alive: rather than crash and leave its claims to expire (the outbox
lease, JOB_STALE_AFTER_SECONDS), it waits a bounded time for the database and writes again.
"""

import logging
import time

from django.db import connections

from bookings_project.db import DATABASE_UNAVAILABLE, database_ping

logger = logging.getLogger(__name__)

# How long a worker waits for the database to answer again before giving up (the lease and
# staleness then take over), and its pauses between tries: 0.5, 1, 2, 4, 8, 8 … s.
DATABASE_WAIT_SECONDS = 60.0
FIRST_PAUSE = 0.5
MAX_PAUSE = 8.0


def _drop_broken_connection(alias: str) -> None:
    """A connection the outage broke stays broken: close it so the next query opens a new one.
    (A usable one is kept: closing it inside a transaction would lose the transaction.)"""
    connection = connections[alias]
    try:
        if connection.connection is not None and not connection.is_usable():
            connection.close()
    except Exception:  # noqa: BLE001 - closing a dead connection may fail too; it is dropped anyway
        logger.debug("closing the broken %s connection failed", alias, exc_info=True)


def database_retry(write, *, what: str, alias: str = "default", max_seconds: float | None = None):
    """`write()`, tried again with backoff while the database is unavailable, for at most
    `max_seconds` (DATABASE_WAIT_SECONDS); then its last error is raised. Only for writes that
    are safe to run twice (conditional updates, fenced by a claim)."""
    deadline = time.monotonic() + (DATABASE_WAIT_SECONDS if max_seconds is None else max_seconds)
    pause = FIRST_PAUSE
    while True:
        try:
            return write()
        except DATABASE_UNAVAILABLE as exc:
            if time.monotonic() + pause > deadline:
                raise
            logger.warning("%s: database unavailable (%s: %s); trying again in %.1f s", what,
                           exc.__class__.__name__, str(exc).strip()[:200], pause)
        time.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE)
        _drop_broken_connection(alias)


def database_wait(*, what: str, alias: str = "default", max_seconds: float | None = None) -> bool:
    """Whether the database answers (again) within `max_seconds`, waiting with backoff."""

    def ping():
        _drop_broken_connection(alias)
        database_ping(alias)

    try:
        database_retry(ping, what=what, alias=alias, max_seconds=max_seconds)
    except DATABASE_UNAVAILABLE:
        return False
    return True
