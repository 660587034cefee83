"""Booking emails, and delivery under faults: concurrent dispatchers, a worker process killed
mid-batch, Redis unreachable while bookings are made (PostgreSQL + Redis pass)."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from bookings_project.testing import database_url, free_port, wait_for
from catalog.tests.factories import make_item
from ops.dispatch import outbox_dispatch_until_empty
from ops.models import OutboxEvent, OutboxStatus
from ops.outbox import EventType, outbox_enqueue

ALL_DBS = ["default", "documents"]



def emails_of(smtp_server, event_type):
    return [m["message"] for m in smtp_server.messages if m["message"]["X-Bookings-Event"] == event_type]


@pytest.mark.django_db(databases=ALL_DBS)
def test_booking_and_cancellation_each_deliver_one_email(client_for, make_user, smtp_server):
    organizer = make_user(roles=["EVENT_ORGANIZER"])
    customer = make_user(username="carol", email="carol@example.com")
    item = make_item(organizer, name="Tech Workshop", location="Room 4", capacity=5,
                     tiers=[("Early Bird", "49.99", 2), ("Regular", "59.99", 3)])
    client = client_for(customer)

    booking = client.post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").json()
    outbox_dispatch_until_empty()
    cancelled = client.put(f"/api/v1/bookings/{booking['id']}/cancel")
    assert cancelled.status_code == 200
    outbox_dispatch_until_empty()

    [confirmed] = emails_of(smtp_server, "BOOKING_CONFIRMED")
    [cancel] = emails_of(smtp_server, "BOOKING_CANCELLED")
    for message in (confirmed, cancel):
        assert message["To"] == "carol@example.com"
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert "Tech Workshop" in text and "Room 4" in text and "Early Bird" in text and "49.99" in text
        assert "Mon 15 Sep 2031, 10:00–12:00 UTC" in text  # (the item's times, in TIME_ZONE)
        [ics] = [part for part in message.iter_attachments() if part.get_content_type() == "text/calendar"]
        calendar = ics.get_content()
        calendar = calendar.decode() if isinstance(calendar, bytes) else calendar
        assert f"UID:booking-{booking['id']}@" in calendar and "SUMMARY:Tech Workshop" in calendar
    assert "Booking confirmed" in confirmed["Subject"] and "METHOD:REQUEST" in str(confirmed)
    assert "Booking cancelled" in cancel["Subject"] and "METHOD:CANCEL" in str(cancel)
    assert len(smtp_server.messages) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, databases=ALL_DBS)
def test_two_dispatchers_at_once_deliver_each_event_exactly_once(smtp_server):
    events = [outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"u{n}@example.com",
                             payload={"subject": "s", "message": "m"}) for n in range(60)]
    barrier = threading.Barrier(4)

    def dispatcher():
        try:
            barrier.wait()
            outbox_dispatch_until_empty(batch_size=5)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    ids = smtp_server.message_ids()
    assert len(ids) == 60 and len(set(ids)) == 60
    assert sorted(ids) == sorted(f"<{e.pk}@bookings.local>" for e in events)
    assert OutboxEvent.objects.filter(status=OutboxStatus.SENT).count() == 60


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, databases=ALL_DBS)
def test_worker_killed_mid_batch_loses_nothing(smtp_server):
    events = [outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"k{n}@example.com",
                             payload={"subject": "s", "message": "m"}) for n in range(6)]
    smtp_server.delay = 0.4  # slow enough to kill the worker between two sends
    env = {**os.environ, "DATABASE_URL": database_url("default"),
           "DOCUMENTS_DATABASE_URL": database_url("documents"), "EMAIL_HOST": "127.0.0.1",
           "EMAIL_PORT": str(smtp_server.port), "DB_POOL": "0"}
    worker = subprocess.Popen([sys.executable, "manage.py", "dispatch_outbox", "--batch-size", "6"],
                              cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: len(smtp_server.messages) >= 2, timeout=30)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    delivered_by_dead_worker = len(smtp_server.messages)
    assert delivered_by_dead_worker < 6
    assert OutboxEvent.objects.filter(status=OutboxStatus.PENDING).exists()

    smtp_server.delay = 0
    lapsed = timezone.now() - timedelta(seconds=1)  # the dead worker's lease runs out
    OutboxEvent.objects.filter(claimed_until__isnull=False).update(claimed_until=lapsed, next_attempt_at=lapsed)
    outbox_dispatch_until_empty()

    assert OutboxEvent.objects.filter(status=OutboxStatus.SENT).count() == 6
    expected = {f"<{e.pk}@bookings.local>" for e in events}
    assert set(smtp_server.message_ids()) == expected  # every event delivered
    # At most the one email in flight when the worker died is repeated, with the same Message-ID.
    assert len(smtp_server.message_ids()) <= 7


@pytest.fixture
def private_redis():
    """A Redis server of our own on a free port, so the test can stop and restart it."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    port = free_port()

    def start():
        process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no"], stdout=subprocess.DEVNULL)
        import redis

        assert wait_for(lambda: _pings(redis, port), timeout=10)
        return process

    state = {"process": start()}

    class Handle:
        url = f"redis://127.0.0.1:{port}/0"

        def stop(self):
            state["process"].terminate()
            state["process"].wait(10)

        def start(self):
            state["process"] = start()

    yield Handle()
    if state["process"].poll() is None:
        state["process"].terminate()
        state["process"].wait(10)


def point_celery_at(app, url) -> None:
    """Publish to `url` from now on: drop the cached connection and producer pools (earlier
    tests in this process may have published to the suite's own broker)."""
    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None


def _pings(redis, port):
    try:
        return redis.Redis(port=port, socket_connect_timeout=0.2).ping()
    except redis.exceptions.ConnectionError:
        return False


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True, databases=ALL_DBS)
def test_bookings_succeed_while_redis_is_down_and_emails_go_out_after(
        client_for, make_user, smtp_server, private_redis):
    from celery.contrib.testing.worker import start_worker

    from bookings_project.celery import app
    from ops.tasks import outbox_dispatch_run_task

    original = app.conf.broker_url
    point_celery_at(app, private_redis.url)
    try:
        organizer = make_user(roles=["EVENT_ORGANIZER"])
        item = make_item(organizer, name="Redis-proof", capacity=10)
        private_redis.stop()
        users = [make_user() for _ in range(3)]
        started = time.monotonic()
        for user in users:
            response = client_for(user).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json")
            assert response.status_code == 201
        elapsed = time.monotonic() - started
        assert elapsed < 10, f"bookings took {elapsed:.1f}s with Redis down"
        pending = OutboxEvent.objects.filter(event_type=EventType.BOOKING_CONFIRMED, status=OutboxStatus.PENDING)
        assert pending.count() == 3

        private_redis.start()
        point_celery_at(app, private_redis.url)  # drop the broken connections; the next publish reconnects
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
            outbox_dispatch_run_task.apply_async()  # what beat's periodic sweep sends
            assert wait_for(lambda: len(emails_of(smtp_server, "BOOKING_CONFIRMED")) == 3, timeout=30)
        assert sorted(m["To"] for m in emails_of(smtp_server, "BOOKING_CONFIRMED")) == sorted(u.email for u in users)
        assert not OutboxEvent.objects.filter(event_type=EventType.BOOKING_CONFIRMED,
                                              status=OutboxStatus.PENDING).exists()
    finally:
        point_celery_at(app, original)
        connection.close()

