"""Thin Celery tasks: each calls one service and is safe to run twice."""

import logging

from celery import shared_task
from django.conf import settings

logger = logging.getLogger(__name__)


@shared_task(name="ops.outbox_dispatch_task", ignore_result=True)
def outbox_dispatch_task():
    from .dispatch import outbox_dispatch_until_empty
    from .outbox import outbox_nudge_taken

    outbox_nudge_taken()  # before claiming: events committed from now on nudge again
    return outbox_dispatch_until_empty(max_seconds=settings.OUTBOX_DISPATCH_SECONDS)


@shared_task(name="ops.reconcile_all_task", ignore_result=True)
def reconcile_all_task():
    from .jobs import reconciliation_schedule_all

    reconciliation_schedule_all()


def outbox_nudge_task() -> None:
    """Enqueue a dispatch; never fails the caller (the beat sweep is the safety net)."""
    try:
        outbox_dispatch_task.apply_async(retry=False)
    except Exception as exc:  # broker unreachable: events wait in the DB
        logger.warning("Could not nudge the outbox dispatcher (%s); the sweep will deliver", exc)
