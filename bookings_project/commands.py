"""Argument types and database-error handling shared by the management commands."""

import argparse
import math
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.db import InterfaceError, OperationalError

from bookings_project.text import one_line

# The database cannot be reached (down, restarting, pool exhausted, connection dropped): worth
# a clear message, and worth waiting out in a long-running loop.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


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


def error_line(exc: BaseException) -> str:
    """The error's message on one line (a driver's message often spans several)."""
    return one_line(str(exc)) or exc.__class__.__name__


@contextmanager
def database_errors_as_command_error():
    """A command run while the database is unreachable ends with one line, not a traceback."""
    try:
        yield
    except DATABASE_UNAVAILABLE as exc:
        raise CommandError(f"Database unavailable: {error_line(exc)}") from exc
