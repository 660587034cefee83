from django.db.models import QuerySet

from .models import SystemLog


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
