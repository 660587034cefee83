"""Retention: old system log entries and SENT outbox events go, in batches; work still to do
(PENDING, DEAD) and anything younger stays; 0 keeps everything."""

import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from ops import retention
from ops.models import OutboxEvent, OutboxStatus, SystemLog
from ops.retention import history_prune

pytestmark = pytest.mark.django_db


def log_at(days_ago):
    return SystemLog.objects.create(timestamp=timezone.now() - timedelta(days=days_ago), event_type="APP",
                                    severity="info", message=f"{days_ago} days ago")


def event(status, days_ago):
    """Every status gets an old processed_at (a DEAD event was processed too; a PENDING one may
    carry it from an earlier attempt), so only `status=SENT` keeps PENDING and DEAD events."""
    moment = timezone.now() - timedelta(days=days_ago)
    return OutboxEvent.objects.create(event_type="GENERIC", status=status, created_at=moment, processed_at=moment)


@pytest.fixture
def history(monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 2)  # several batches
    logs = {days: log_at(days) for days in (1, 89, 91, 200, 400)}
    events = {(status, days): event(status, days) for status in OutboxStatus.values for days in (1, 31, 90)}
    return logs, events


def test_old_entries_and_sent_events_go_work_still_to_do_stays(history):
    logs, events = history
    assert history_prune(log_days=90, sent_event_days=30) == {"logs": 3, "sentEvents": 2}
    assert set(SystemLog.objects.values_list("pk", flat=True)) == {logs[1].pk, logs[89].pk}
    assert OutboxEvent.objects.count() == len(events) - 2
    assert not OutboxEvent.objects.filter(status=OutboxStatus.SENT, processed_at__lt=timezone.now() - timedelta(days=30))
    assert OutboxEvent.objects.filter(status=OutboxStatus.DEAD).count() == 3  # never pruned


def test_zero_keeps_everything_and_the_defaults_keep_logs(history):
    assert history_prune(log_days=0, sent_event_days=0) == {"logs": 0, "sentEvents": 0}
    assert settings.LOG_RETENTION_DAYS == 0 and settings.OUTBOX_SENT_RETENTION_DAYS == 30
    assert history_prune() == {"logs": 0, "sentEvents": 2}
    assert SystemLog.objects.count() == 5


def test_the_command_counts_with_dry_run_then_deletes(history):
    out = io.StringIO()
    call_command("prune_history", "--log-days", "90", "--sent-event-days", "30", "--dry-run", stdout=out)
    assert out.getvalue().strip() == "would delete 3 system log entries and 2 sent outbox events"
    assert SystemLog.objects.count() == 5
    out = io.StringIO()
    call_command("prune_history", "--log-days", "90", "--sent-event-days", "30", stdout=out)
    assert out.getvalue().strip() == "deleted 3 system log entries and 2 sent outbox events"


def test_beat_prunes_nightly():
    entry = settings.CELERY_BEAT_SCHEDULE["prune-history"]
    assert entry["task"] == "ops.history_prune_task"
    from celery import current_app

    import ops.tasks  # noqa: F401  (the worker imports it through autodiscovery)

    assert "ops.history_prune_task" in current_app.tasks
