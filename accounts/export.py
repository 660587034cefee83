"""A person's data, in one JSON document (GET /api/v1/user/{id}/export): the right of access and
to data portability (GDPR Art. 15 and 20). The account, every booking it ever made (any status,
oldest first, in the booking API's own shape) and the system log's entries about it (failed
logins, role and password changes …, newest first, in the core API's shape). Each part keeps its
API's times (bookings local in TIME_ZONE without offset, the rest UTC with Z), so `timeZone`
names the zone: a document read away from the API would otherwise not say.

The log part is bounded (EXPORT_LOG_ENTRIES and EXPORT_LOG_BYTES, newest kept): any signed-in
account may POST /logs naming any userId, so its length is not the person's to control; the
document says when it was cut. Bookings are not: one account holds at most MAX_ACTIVE_BOOKINGS_PER_USER at a time, and its
history is its own. Each export is itself an audit entry (who exported whose data).

An entry another account made about the person (an ADMIN's change or export, another account's
POST /logs) is exported without its IP address: that is the other account's, or one it chose.
Failed logins against the account keep theirs (the system's own entries, reportedBy null).
"""

import json
from contextlib import closing

from django.db import transaction
from django.utils import timezone

from ops.models import Severity, SystemLog
from ops.services import system_log_create
from reservations.selectors import booking_queryset

EXPORT_LOG_ENTRIES = 10_000
# Of the log part as JSON. POST /logs takes 10,000-character messages and 16 KB of additionalData:
# by count alone, 10,000 entries could be a 265 MB document (1.1 GB in the worker).
EXPORT_LOG_BYTES = 8 * 1024 * 1024
LOG_ENTRY_FIELDS_BYTES = 400  # an entry's JSON besides its message and additionalData (at most)


def user_export(*, user, actor, request=None) -> dict:
    """{exportedAt, timeZone, user, bookings, systemLog, systemLogTruncated} of `user`, as model rows (the
    view shapes them), exported by `actor` (the user or an ADMIN)."""
    bookings = list(booking_queryset().filter(user=user).order_by("booking_date", "id"))
    entries, truncated = _log_entries(user)
    # Once everything is read: the entry says the data went out, so a failed read leaves none.
    system_log_create(event_type="USER", severity=Severity.INFO, message="Personal data exported", user_id=user.pk,
                      request=request, reported_by=actor, additional_data={"by": actor.pk})
    return {
        "exportedAt": timezone.now(),
        "timeZone": timezone.get_default_timezone_name(),
        "user": user,
        "bookings": bookings,
        "systemLog": entries,
        "systemLogTruncated": truncated,
    }


def _log_entries(user) -> tuple[list[SystemLog], bool]:
    """The newest entries about `user` that fit EXPORT_LOG_ENTRIES and EXPORT_LOG_BYTES, and
    whether any were left out. Read in chunks, so no more than that is ever held."""
    entries, size = [], 0
    rows = SystemLog.objects.filter(user_id=str(user.pk)).order_by("-timestamp", "-id")[:EXPORT_LOG_ENTRIES + 1]
    # (in a transaction: outside one, PostgreSQL's WITH HOLD cursor would copy every row first)
    with transaction.atomic(), closing(rows.iterator(chunk_size=500)) as chunked:
        for entry in chunked:
            size += LOG_ENTRY_FIELDS_BYTES + len(json.dumps([entry.message, entry.additional_data],
                                                            ensure_ascii=False, default=str).encode())
            if len(entries) == EXPORT_LOG_ENTRIES or size > EXPORT_LOG_BYTES:
                return entries, True
            if entry.reported_by_id not in (None, user.pk):
                entry.ip_address = None  # (never saved) another account's request or choice: not this person's
            entries.append(entry)
    return entries, False
