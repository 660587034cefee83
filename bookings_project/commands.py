"""Argument types and database-error handling shared by the management commands."""

import argparse
import math
from contextlib import contextmanager

from django.core.management.base import CommandError

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


@contextmanager
def database_errors_as_command_error():
    """A command run while the database is unreachable ends with one line, not a traceback."""
    try:
        yield
    except DATABASE_UNAVAILABLE as exc:
        raise CommandError(f"Database unavailable: {error_line(exc)}") from exc
