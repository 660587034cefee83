"""A person's data, in one JSON document (GET /api/v1/user/{id}/export): the right of access and
to data portability (GDPR Art. 15 and 20). The account, every booking it ever made (any status,
oldest first, in the booking API's own shape) and the system log's entries about it (failed
logins, role and password changes …, newest first, in the core API's shape).

The log part is bounded (EXPORT_LOG_ENTRIES, newest kept): any signed-in account may POST /logs
naming any userId, so its length is not the person's to control; the document says when it was
cut. Bookings are not: one account holds at most MAX_ACTIVE_BOOKINGS_PER_USER at a time, and its
history is its own. Each export is itself an audit entry (who exported whose data).
"""

from django.utils import timezone

from ops.models import Severity, SystemLog
from ops.services import system_log_create
from reservations.selectors import booking_queryset

EXPORT_LOG_ENTRIES = 10_000


def user_export(*, user, actor, request=None) -> dict:
    """{exportedAt, user, bookings, systemLog, systemLogTruncated} of `user`, as model rows (the
    view shapes them), exported by `actor` (the user or an ADMIN)."""
    entries = list(SystemLog.objects.filter(user_id=str(user.pk)).order_by("-timestamp", "-id")[:EXPORT_LOG_ENTRIES + 1])
    system_log_create(event_type="USER", severity=Severity.INFO, message="Personal data exported", user_id=user.pk,
                      request=request, reported_by=actor, additional_data={"by": actor.pk})
    return {
        "exportedAt": timezone.now(),
        "user": user,
        "bookings": booking_queryset().filter(user=user).order_by("booking_date", "id"),
        "systemLog": entries[:EXPORT_LOG_ENTRIES],
        "systemLogTruncated": len(entries) > EXPORT_LOG_ENTRIES,
    }
