"""Thin Celery tasks: each calls one service and is safe to run twice (plus the publisher
that queues a dispatch, outbox_dispatch_enqueue)."""

import logging

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, InterfaceError

from bookings_project.cache import redis_failed

logger = logging.getLogger(__name__)


@shared_task(name="ops.outbox_dispatch_task", ignore_result=True)
def outbox_dispatch_task():
    from .dispatch import outbox_dispatch_run

    return outbox_dispatch_run(max_seconds=settings.OUTBOX_DISPATCH_SECONDS)


# Beat sends this once a night: a database blip then (or a dropped connection, InterfaceError)
# must not skip the night. Retries back off exponentially with full jitter, capped: all ten fit
# in about 17 minutes, well inside the beat entry's one-hour expiry, which they keep.
@shared_task(name="ops.reconcile_all_task", ignore_result=True, autoretry_for=(DatabaseError, InterfaceError),
             retry_backoff=True, retry_backoff_max=600, max_retries=10)
def reconcile_all_task():
    from .jobs import reconciliation_schedule_all

    reconciliation_schedule_all()


@shared_task(name="ops.history_prune_task", ignore_result=True, autoretry_for=(DatabaseError, InterfaceError),
             retry_backoff=True, retry_backoff_max=600, max_retries=10)
def history_prune_task():
    from .retention import history_prune

    logger.info("history pruned: %s", history_prune())


def outbox_dispatch_enqueue() -> None:
    """Queue an outbox_dispatch_task; never fails the caller (the beat sweep is the safety net)."""
    try:
        outbox_dispatch_task.apply_async(retry=False)
    except Exception as exc:  # broker unreachable: events wait in the DB
        if settings.REDIS_URL:  # the broker is the shared Redis: let it rest (bookings_project.cache)
            redis_failed()
        logger.warning("Could not nudge the outbox dispatcher (%s); the sweep will deliver", exc)
