"""ops.outbox: writing events (a registration's, a booking's), nudging a dispatcher once per
run, and the operator's retry of a DEAD event. Delivery goes through a real SMTP server on loopback."""

import pytest

from ops.dispatch import outbox_dispatch_batch, outbox_dispatch_until_empty
from ops.models import OutboxEvent, OutboxStatus
from ops.outbox import EventType, outbox_enqueue, outbox_retry
from ops.tests.factories import make_due, register

pytestmark = pytest.mark.django_db


def test_registration_writes_one_event_and_delivers_one_welcome_email(api_client, smtp_server):
    register(api_client, "alice")
    event = OutboxEvent.objects.get()
    assert (event.event_type, event.status, event.recipient_email) == (
        EventType.USER_REGISTERED, OutboxStatus.PENDING, "alice@example.com")

    stats = outbox_dispatch_batch()

    assert stats == {"claimed": 1, "sent": 1, "retry": 0, "deferred": 0, "dead": 0}
    [mail] = smtp_server.messages
    assert mail["to"] == ["alice@example.com"]
    assert "Welcome" in mail["message"]["Subject"]
    assert mail["message"]["Message-ID"] == f"<{event.pk}@bookings.local>"
    body = mail["message"].get_body(preferencelist=("plain",)).get_content()
    assert "alice@example.com" in body
    assert mail["message"].get_body(preferencelist=("html",)) is not None
    event.refresh_from_db()
    assert event.status == OutboxStatus.SENT and event.processed_at is not None
    # Dispatching again sends nothing more.
    assert outbox_dispatch_batch()["claimed"] == 0
    assert len(smtp_server.messages) == 1


def test_after_max_retries_event_is_dead_and_retry_sends_it(api_client, smtp_server, settings):
    settings.OUTBOX_MAX_RETRIES = 3
    smtp_server.stop()
    register(api_client, "dora")
    for attempt in range(3):
        make_due()
        outbox_dispatch_batch()
    event = OutboxEvent.objects.get()
    assert event.status == OutboxStatus.DEAD and event.retry_count == 3
    make_due()
    assert outbox_dispatch_batch()["claimed"] == 0  # DEAD events are not retried on their own

    smtp_server.start()
    assert outbox_retry(event_ids=[event.pk]) == [event.pk]
    outbox_dispatch_batch()

    event.refresh_from_db()
    assert event.status == OutboxStatus.SENT
    assert [m["to"] for m in smtp_server.messages] == [["dora@example.com"]]


def test_a_retry_revives_an_event_once_and_leaves_queued_ones_alone(smtp_server):
    """An event with all its attempts, due and held by no dispatcher (new, or revived a moment ago
    by another operator or a form sent twice) has nothing to revive: no second revival, no second
    history entry (on_revived)."""
    dead, new = (outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"{n}@example.com", payload={})
                 for n in ("dead", "new"))
    OutboxEvent.objects.filter(pk=dead.pk).update(status=OutboxStatus.DEAD, retry_count=5, error_message="boom")
    recorded = []

    assert outbox_retry(event_ids=[dead.pk, new.pk], on_revived=recorded.append) == [dead.pk]
    assert outbox_retry(event_ids=[dead.pk, new.pk], on_revived=recorded.append) == []

    assert recorded == [[dead.pk]]
    assert outbox_dispatch_batch()["sent"] == 2


class TestNudgeDebounce:
    """One Celery message per dispatcher run, not one per committed transaction."""

    @pytest.fixture
    def published(self, monkeypatch):
        from ops import tasks

        sent = []
        monkeypatch.setattr(tasks.outbox_dispatch_run_task, "apply_async", lambda **kwargs: sent.append(kwargs))
        return sent

    @pytest.mark.redis
    def test_a_queued_nudge_stands_for_later_ones_until_its_dispatcher_starts(self, published):
        from ops.outbox import outbox_nudge, outbox_nudge_taken
        from ops.tasks import outbox_dispatch_run_task

        outbox_nudge_taken()
        for _ in range(3):
            outbox_nudge()
        assert len(published) == 1

        outbox_dispatch_run_task()  # a dispatcher starts: whatever commits from now on must nudge again
        outbox_nudge()
        outbox_nudge()
        assert len(published) == 2

    @pytest.mark.redis
    def test_the_flag_is_set_to_expire_in_case_its_dispatcher_never_starts(self, published):
        from bookings_project.cache import shared_key, shared_redis
        from ops import outbox

        outbox.outbox_nudge_taken()
        outbox.outbox_nudge()
        redis, flag = shared_redis(), shared_key(outbox.NUDGE_PENDING_KEY)
        assert 0 < redis.pttl(flag) <= outbox.NUDGE_PENDING_MS
        redis.delete(flag)  # what Redis does once NUDGE_PENDING_MS have passed
        outbox.outbox_nudge()
        assert len(published) == 2

    def test_without_redis_every_commit_nudges(self, published, settings):
        from ops.outbox import outbox_nudge

        settings.REDIS_URL = ""
        for _ in range(3):
            outbox_nudge()
        assert len(published) == 3

    def test_with_redis_unreachable_it_leaves_delivery_to_the_sweep(self, published, monkeypatch, settings):
        """The broker is that same Redis: publishing would only wait out another timeout (5 s
        on a hung Redis) inside the request. The first failure puts Redis to rest, so the next
        commits do not even try (bookings_project.cache)."""
        import redis

        from bookings_project.cache import redis_resting
        from ops.outbox import outbox_nudge

        calls = []

        class Dead(redis.Redis):
            def set(self, *args, **kwargs):
                calls.append(args)
                return super().set(*args, **kwargs)

        settings.REDIS_URL = "redis://127.0.0.1:1/0"
        dead = Dead(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
        monkeypatch.setattr("django_redis.get_redis_connection", lambda alias: dead)
        outbox_nudge()
        outbox_nudge()
        assert published == [] and len(calls) == 1 and redis_resting()

    def test_a_backlog_asks_for_another_dispatcher_after_each_full_batch(self, published, settings):
        from ops.outbox import DOCUMENT_SYNC

        settings.REDIS_URL = ""
        for _ in range(25):
            outbox_enqueue(event_type=DOCUMENT_SYNC)
        published.clear()

        totals = outbox_dispatch_until_empty(batch_size=10)

        assert (totals["sent"], totals["batches"]) == (25, 3)
        assert len(published) == 2  # after the two full batches, not after the last partial one

    def test_eager_mode_drains_a_backlog_without_nesting_dispatchers(self, settings):
        from celery import current_app

        from ops.outbox import DOCUMENT_SYNC

        settings.REDIS_URL = ""
        for _ in range(25):
            outbox_enqueue(event_type=DOCUMENT_SYNC)
        current_app.conf.task_always_eager = True
        try:
            totals = outbox_dispatch_until_empty(batch_size=2)
        finally:
            current_app.conf.task_always_eager = False
        assert (totals["sent"], totals["batches"]) == (25, 13)  # this dispatcher did it all

    def test_a_dispatcher_out_of_time_hands_the_backlog_to_the_next(self, published, settings):
        from ops.outbox import DOCUMENT_SYNC
        from ops.tasks import outbox_dispatch_run_task

        settings.REDIS_URL = ""
        settings.OUTBOX_DISPATCH_SECONDS = 0  # a worker asked to stop: one batch, then go
        for _ in range(25):
            outbox_enqueue(event_type=DOCUMENT_SYNC)
        published.clear()

        outbox_dispatch_run_task()

        assert OutboxEvent.objects.filter(status=OutboxStatus.SENT).count() == 10
        assert len(published) == 1  # the next dispatcher was asked for
        while OutboxEvent.objects.filter(status=OutboxStatus.PENDING).exists():
            outbox_dispatch_run_task()
        assert OutboxEvent.objects.filter(status=OutboxStatus.SENT).count() == 25


@pytest.mark.django_db(transaction=True)
def test_a_committed_booking_publishes_one_nudge(make_user, monkeypatch, settings):
    """The commit path itself (real COMMIT, real on_commit hooks): a booking's transaction writes
    several outbox events and asks for exactly one dispatcher, after it commits."""
    from catalog.tests.factories import make_item
    from ops import tasks
    from reservations.services import booking_create

    settings.REDIS_URL = ""  # no debounce flag: every commit that asks, publishes
    published = []
    monkeypatch.setattr(tasks.outbox_dispatch_run_task, "apply_async", lambda **kwargs: published.append(kwargs))
    item = make_item(make_user(roles=["EVENT_ORGANIZER"]), capacity=5, tiers=[("A", "10.00", 5)])
    customer = make_user()
    published.clear()
    before = OutboxEvent.objects.count()

    booking_create(user=customer, item_id=item.pk)

    assert OutboxEvent.objects.count() > before  # the booking wrote its events ...
    assert len(published) == 1  # ... and nudged once, after its commit
