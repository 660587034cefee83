"""Log line format: times in UTC with Z, to the millisecond (`2026-11-21T13:23:45.123Z`), as the
core API writes its times. logging's default is the local wall clock without a zone: a line could
not be matched with a `/logs` entry or an email's Date without knowing TIME_ZONE, and the hour a
DST change repeats printed the same times twice (lines out of order, two incidents one hour)."""

import logging
from datetime import UTC, datetime


class UtcFormatter(logging.Formatter):
    def formatTime(self, record, datefmt=None):
        moment = datetime.fromtimestamp(record.created, UTC)
        if datefmt:
            return moment.strftime(datefmt)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
