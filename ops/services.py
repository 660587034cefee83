import logging

from django.utils import timezone

from bookings_project.http import client_ip
from bookings_project.text import loggable

from .middleware import current_request_id
from .models import Severity, SystemLog

logger = logging.getLogger("ops.events")

_LEVELS = {
    Severity.DEBUG: logging.DEBUG,
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.ERROR: logging.ERROR,
    Severity.CRITICAL: logging.CRITICAL,
}


def system_log_create(
    *,
    event_type: str,
    severity: str,
    message: str,
    user_id=None,
    ip_address: str | None = None,
    additional_data: dict | None = None,
    request=None,
    reported_by=None,
) -> SystemLog:
    """Record a system event (also echoed to the process log with the request id)."""
    if request is not None and ip_address is None:
        ip_address = client_ip(request)
    entry = SystemLog.objects.create(
        timestamp=timezone.now(),
        event_type=event_type,
        severity=severity,
        message=message,
        user_id="" if user_id is None else str(user_id),
        ip_address=ip_address,
        additional_data=additional_data or {},
        request_id=current_request_id() if current_request_id() != "-" else "",
        reported_by=reported_by,
    )
    # One line each, whatever a client sent (POST /logs): no forged lines, no megabyte lines.
    logger.log(_LEVELS.get(severity, logging.INFO), "%s %s user=%s ip=%s %s",
               loggable(event_type), loggable(message), loggable(entry.user_id or "-"), ip_address or "-",
               loggable(entry.additional_data, limit=1000))
    return entry
