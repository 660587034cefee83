"""Celery application: configured for at-least-once delivery of small, idempotent tasks."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookings_project.settings")

app = Celery("bookings_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    # A task is acknowledged only after it ran, so a killed worker's task is redelivered.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_time_limit=600,
    task_soft_time_limit=540,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # What a task prints (the console email backend's emails in embedded mode) is output, not a warning.
    worker_redirect_stdouts_level="INFO",
)
app.autodiscover_tasks()
