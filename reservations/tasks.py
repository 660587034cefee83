"""Thin Celery tasks (see ops/tasks.py): each calls one service and is safe to run twice."""

import logging

from celery import shared_task
from django.db import DatabaseError, InterfaceError

from .reminders import booking_reminders_enqueue

logger = logging.getLogger(__name__)


# A missed run costs nothing but five minutes: the next one queues whatever is still due.
@shared_task(name="reservations.booking_reminders_task", ignore_result=True,
             autoretry_for=(DatabaseError, InterfaceError), retry_backoff=True, max_retries=3)
def booking_reminders_enqueue_task():
    return booking_reminders_enqueue()
