"""Argument types and database-error handling shared by the management commands."""

import argparse
import math
import signal
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.db import DatabaseError, Error, OperationalError

from bookings_project.db import DATABASE_UNAVAILABLE
from bookings_project.text import error_line


def bounded(low, high, *, kind=int):
    """An argparse `type`: a finite `kind` (int or float) from `low` to `high`, else argparse's
    usage error (exit 2) instead of a traceback from deep inside the command."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}, got {text}")
        return value

    return parse


# PostgreSQL's undefined_table / undefined_column; SQLite says it in words.
_NOT_MIGRATED_SQLSTATES = ("42P01", "42703")
_NOT_MIGRATED_SQLITE = ("no such table", "no such column")


def not_migrated(exc: BaseException) -> bool:
    """The database answers but lacks the project's tables (or columns): migrations not run."""
    if not isinstance(exc, DatabaseError):
        return False
    if getattr(exc.__cause__, "sqlstate", None) in _NOT_MIGRATED_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and str(exc).startswith(_NOT_MIGRATED_SQLITE)


@contextmanager
def database_errors_as_command_error():
    """A command run while the database is unreachable, or before its migrations, ends with one
    line, not a traceback (on PostgreSQL a missing table was a ProgrammingError traceback; on
    SQLite it read "Database unavailable")."""
    try:
        yield
    except Error as exc:  # (InterfaceError is not a DatabaseError)
        if not_migrated(exc):
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]  # not the query it quotes
            raise CommandError(f"Database not migrated: {first} — run `make migrate` (manage.py migrate, "
                               f"then manage.py migrate --database documents)") from exc
        if isinstance(exc, DATABASE_UNAVAILABLE):
            raise CommandError(f"Database unavailable: {error_line(exc)}") from exc
        raise


class interrupt_on:
    """Turn these signals into KeyboardInterrupt (as Ctrl-C) until restore(), so a command's own
    Ctrl-C handling covers a SIGTERM (systemd, docker, a supervisor stopping it) and the SIGHUP of
    a dropped SSH session too: unhandled, they killed the process where it stood."""

    def __init__(self, *signals):
        self.previous = {}
        for sig in signals:
            try:
                self.previous[sig] = signal.signal(sig, self._raise)
            except ValueError:  # not the main thread (call_command from a worker thread): leave it
                pass

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
