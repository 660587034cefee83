"""Thin Celery tasks: each calls one service and is safe to run twice. A task's `name` is what
beat's schedule and messages already queued name it by: it stays when the function is renamed."""

import logging

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, InterfaceError

from .dispatch import outbox_dispatch_run
from .jobs import reconciliation_schedule_all
from .retention import history_prune

logger = logging.getLogger(__name__)


@shared_task(name="ops.outbox_dispatch_task", ignore_result=True)
def outbox_dispatch_run_task():
    return outbox_dispatch_run(max_seconds=settings.OUTBOX_DISPATCH_SECONDS)


# Beat sends this once a night: a database blip then (or a dropped connection, InterfaceError)
# must not skip the night. Retries back off exponentially with full jitter, capped: all ten fit
# in about 17 minutes, well inside the beat entry's one-hour expiry, which they keep.
@shared_task(name="ops.reconcile_all_task", ignore_result=True, autoretry_for=(DatabaseError, InterfaceError),
             retry_backoff=True, retry_backoff_max=600, max_retries=10)
def reconciliation_schedule_all_task():
    reconciliation_schedule_all()


@shared_task(name="ops.history_prune_task", ignore_result=True, autoretry_for=(DatabaseError, InterfaceError),
             retry_backoff=True, retry_backoff_max=600, max_retries=10)
def history_prune_task():
    logger.info("history pruned: %s", history_prune())
