"""Bounded lock waits (PostgreSQL lock_timeout, deadlock detection) become a clean 503 with
Retry-After instead of a 500. Wrap it around the outermost `transaction.atomic()` of a service."""

from contextlib import contextmanager

from django.db import OperationalError

from bookings_project.db import sqlstate

from .exceptions import ItemBusy

# lock_not_available, deadlock_detected, serialization_failure, query_canceled (statement_timeout)
CONTENTION_SQLSTATES = frozenset({"55P03", "40P01", "40001", "57014"})


@contextmanager
def contention_guard():
    try:
        yield
    except OperationalError as exc:
        if sqlstate(exc) in CONTENTION_SQLSTATES:
            raise ItemBusy() from exc
        raise
