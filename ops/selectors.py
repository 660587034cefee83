import uuid

from django.db.models import QuerySet

from .models import Job, SystemLog


def log_list(*, date_from=None, date_to=None, event_type=None, severity=None, user_id=None) -> QuerySet[SystemLog]:
    qs = SystemLog.objects.all()
    if date_from is not None:
        qs = qs.filter(timestamp__gte=date_from)
    if date_to is not None:
        qs = qs.filter(timestamp__lte=date_to)
    if event_type:
        qs = qs.filter(event_type=event_type)
    if severity:
        qs = qs.filter(severity=severity)
    if user_id:
        qs = qs.filter(user_id=str(user_id))
    return qs.order_by("-timestamp", "-id")


def job_list(*, type=None, status=None, date_from=None, date_to=None) -> QuerySet[Job]:
    qs = Job.objects.all()
    if type:
        qs = qs.filter(type=type)
    if status:
        qs = qs.filter(status=status)
    if date_from is not None:
        qs = qs.filter(created_at__gte=date_from)
    if date_to is not None:
        qs = qs.filter(created_at__lte=date_to)
    return qs.order_by("-created_at", "-id")  # (a tiebreak: jobs made in one microsecond page stably)


def job_get(*, job_id) -> Job | None:
    """The job with that id, or None (also for ids that are not UUIDs)."""
    try:
        uuid.UUID(str(job_id))
    except ValueError:
        return None
    return Job.objects.filter(pk=job_id).first()
