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
    assert history_prune(log_days=90, sent_event_days=30) == {"logs": 3, "sentEvents": 2, "expiredTokens": 0}
    assert set(SystemLog.objects.values_list("pk", flat=True)) == {logs[1].pk, logs[89].pk}
    assert OutboxEvent.objects.count() == len(events) - 2
    assert not OutboxEvent.objects.filter(status=OutboxStatus.SENT, processed_at__lt=timezone.now() - timedelta(days=30))
    assert OutboxEvent.objects.filter(status=OutboxStatus.DEAD).count() == 3  # never pruned


def test_zero_keeps_everything_and_the_defaults_keep_logs(history):
    assert history_prune(log_days=0, sent_event_days=0) == {"logs": 0, "sentEvents": 0, "expiredTokens": 0}
    assert settings.LOG_RETENTION_DAYS == 0 and settings.OUTBOX_SENT_RETENTION_DAYS == 30
    assert history_prune() == {"logs": 0, "sentEvents": 2, "expiredTokens": 0}
    assert SystemLog.objects.count() == 5


def test_the_command_counts_with_dry_run_then_deletes(history):
    out = io.StringIO()
    call_command("prune_history", "--log-days", "90", "--sent-event-days", "30", "--dry-run", stdout=out)
    assert out.getvalue().strip() == "would delete 3 system log entries, 2 sent outbox events and 0 expired refresh tokens"
    assert SystemLog.objects.count() == 5
    out = io.StringIO()
    call_command("prune_history", "--log-days", "90", "--sent-event-days", "30", stdout=out)
    assert out.getvalue().strip() == "deleted 3 system log entries, 2 sent outbox events and 0 expired refresh tokens"


def test_beat_prunes_nightly():
    entry = settings.CELERY_BEAT_SCHEDULE["prune-history"]
    assert entry["task"] == "ops.history_prune_task"
    from celery import current_app

    import ops.tasks  # noqa: F401  (the worker imports it through autodiscovery)

    assert "ops.history_prune_task" in current_app.tasks


def test_refresh_tokens_go_once_they_can_no_longer_be_presented(make_user, api_client, settings):
    """A used refresh token's blacklist row must outlive the token (else the used token works
    again); once the token has expired the row is dead weight, a row per refresh."""
    from datetime import timedelta

    from django.utils import timezone
    from freezegun import freeze_time
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    from accounts.tests.factories import DEFAULT_PASSWORD

    user = make_user()
    login = api_client.post("/api/v1/auth/login", {"username": user.username, "password": DEFAULT_PASSWORD},
                            format="json").json()
    assert api_client.post("/api/v1/auth/refresh", {"refreshToken": login["refreshToken"]},
                           format="json").status_code == 200
    from rest_framework_simplejwt.tokens import RefreshToken

    used = OutstandingToken.objects.get(jti=RefreshToken(login["refreshToken"], verify=False)["jti"])
    lifetime = settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]
    assert abs(used.expires_at - (timezone.now() + lifetime)) < timedelta(minutes=1)  # the token's own expiry

    with freeze_time(timezone.now() + lifetime - timedelta(minutes=5)):  # still presentable: kept, refused
        assert history_prune()["expiredTokens"] == 0
        reuse = api_client.post("/api/v1/auth/refresh", {"refreshToken": login["refreshToken"]}, format="json")
        assert reuse.status_code == 401
    rows = OutstandingToken.objects.count()  # (every pair issued: the login's, the refresh's)
    assert BlacklistedToken.objects.filter(token=used).exists()
    with freeze_time(timezone.now() + 2 * lifetime + timedelta(minutes=1)):
        assert history_prune()["expiredTokens"] == rows
    assert not OutstandingToken.objects.exists() and not BlacklistedToken.objects.exists()


def test_each_batch_is_chosen_by_primary_key(make_user, monkeypatch):
    """A batch is the next few rows by primary key (the oldest: an index walk that stops at
    BATCH), never in a model's default ordering — simplejwt's OutstandingToken orders by `user`,
    which would sort every expired row of the table again for every batch of the first prune
    (a row per login and refresh ever made)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from freezegun import freeze_time
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    from accounts.tokens import token_pair_for_user

    monkeypatch.setattr(retention, "BATCH", 2)
    users = [make_user() for _ in range(3)]
    for user in reversed(users):
        token_pair_for_user(user)
    log_at(400), event(OutboxStatus.SENT, 90)
    with freeze_time(timezone.now() + 3 * settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]), \
            CaptureQueriesContext(connection) as queries:
        assert history_prune(log_days=90) == {"logs": 1, "sentEvents": 1, "expiredTokens": 3}
    assert not OutstandingToken.objects.exists()
    batches = [q["sql"] for q in queries.captured_queries if " LIMIT " in q["sql"]]
    order = [sql.split(" ORDER BY ")[-1].split(" LIMIT ")[0] for sql in batches]
    assert len(batches) >= 3 and all(o == "1 ASC" or o.endswith('"id" ASC') for o in order), batches  # (1: the pk)
