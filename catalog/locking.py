"""Bounded lock waits (PostgreSQL lock_timeout, deadlock detection) become a clean 503 with
Retry-After instead of a 500. Wrap it around the outermost `transaction.atomic()` of a service."""

from contextlib import contextmanager

from django.db import OperationalError

from .exceptions import ItemBusy

# lock_not_available, deadlock_detected, serialization_failure, query_canceled (statement_timeout)
CONTENTION_SQLSTATES = frozenset({"55P03", "40P01", "40001", "57014"})


def sqlstate(exc: Exception) -> str | None:
    cause = exc.__cause__ or exc.__context__
    return getattr(cause, "sqlstate", None) or getattr(exc, "sqlstate", None)


def constraint_name(exc: Exception) -> str | None:
    """The constraint an IntegrityError names: PostgreSQL's diagnostics, or SQLite's message
    ("CHECK constraint failed: <name>")."""
    cause = exc.__cause__ or exc.__context__
    diag = getattr(cause, "diag", None)
    if diag is not None:
        return diag.constraint_name
    prefix = "CHECK constraint failed: "
    return str(exc)[len(prefix):].strip() if str(exc).startswith(prefix) else None


@contextmanager
def contention_guard():
    try:
        yield
    except OperationalError as exc:
        if sqlstate(exc) in CONTENTION_SQLSTATES:
            raise ItemBusy() from exc
        raise
