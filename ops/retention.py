"""How long operational history is kept.

Three tables grow with every request: simplejwt's outstanding/blacklisted refresh tokens (a row
per refresh, pruned once the token has expired), `system_logs` (an audit trail: kept unless the operator
sets LOG_RETENTION_DAYS) and `outbox_events` (two or three rows per booking; a SENT event's job
is done, so it is kept OUTBOX_SENT_RETENTION_DAYS, 30 by default). PENDING and DEAD events are
never pruned: they are work still to do. Rows go in short batches by primary key, so pruning a
large backlog never holds a long lock on a table the web processes write to.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import OutboxEvent, OutboxStatus, SystemLog

BATCH = 5_000


def _delete_in_batches(queryset, *, dry_run: bool) -> int:
    if dry_run:
        return queryset.count()
    deleted = 0
    queryset = queryset.order_by("pk")  # (not the model's ordering: OutstandingToken's is `user`)
    while ids := list(queryset.values_list("pk", flat=True)[:BATCH]):
        # (rows of this table: a refresh token's blacklist row goes with it, uncounted)
        deleted += queryset.model.objects.filter(pk__in=ids).delete()[1].get(queryset.model._meta.label, 0)
    return deleted


def history_prune(*, log_days: int | None = None, sent_event_days: int | None = None,
                  dry_run: bool = False) -> dict:
    """Delete system log entries older than `log_days` and SENT outbox events processed more than
    `sent_event_days` ago (None: the settings; 0: keep everything). Returns what went (or, with
    `dry_run`, what would go)."""
    log_days = settings.LOG_RETENTION_DAYS if log_days is None else log_days
    sent_event_days = settings.OUTBOX_SENT_RETENTION_DAYS if sent_event_days is None else sent_event_days
    now = timezone.now()
    result = {"logs": 0, "sentEvents": 0}
    if log_days > 0:
        old_logs = SystemLog.objects.filter(timestamp__lt=now - timedelta(days=log_days))
        result["logs"] = _delete_in_batches(old_logs, dry_run=dry_run)
    if sent_event_days > 0:
        old_events = OutboxEvent.objects.filter(status=OutboxStatus.SENT,
                                                processed_at__lt=now - timedelta(days=sent_event_days))
        result["sentEvents"] = _delete_in_batches(old_events, dry_run=dry_run)
    result["expiredTokens"] = _delete_in_batches(_expired_refresh_tokens(now), dry_run=dry_run)
    return result


def _expired_refresh_tokens(now):
    """simplejwt's outstanding (and, cascading, blacklisted) refresh tokens that can no longer be
    presented. Rows written before their expiry was recorded correctly (accounts.tokens) carry
    the time they were used, which is at most JWT_REFRESH_TTL before their real expiry: kept that
    much longer, no row goes while its token could still be presented (a used one would work again)."""
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    lifetime = settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]
    return OutstandingToken.objects.filter(expires_at__lt=now - lifetime)
