"""The outbox admin's retry action revives a DEAD event and it is delivered."""

import pytest
from django.core.management import call_command

from ops.dispatch import outbox_dispatch_batch
from ops.models import OutboxEvent, OutboxStatus
from ops.outbox import EventType, outbox_enqueue

pytestmark = pytest.mark.django_db


def test_admin_retry_action_sends_dead_event(client, make_user, smtp_server):
    admin_user = make_user(roles=["ADMIN"])
    event = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="x@example.com",
                           payload={"subject": "Hi", "message": "Body"})
    OutboxEvent.objects.filter(pk=event.pk).update(status=OutboxStatus.DEAD, retry_count=5, error_message="boom")
    client.force_login(admin_user)

    listing = client.get("/admin/ops/outboxevent/?status__exact=DEAD")
    assert listing.status_code == 200 and "x@example.com" in listing.content.decode()
    response = client.post("/admin/ops/outboxevent/", {"action": "retry_events", "_selected_action": [str(event.pk)]})
    assert response.status_code == 302
    outbox_dispatch_batch()

    event.refresh_from_db()
    assert event.status == OutboxStatus.SENT
    assert [m["to"] for m in smtp_server.messages] == [["x@example.com"]]


def test_dispatch_outbox_command_sends_one_batch(smtp_server, capsys, settings, monkeypatch):
    settings.OUTBOX_BATCH_SIZE = 2
    for n in range(3):
        outbox_enqueue(event_type=EventType.GENERIC, recipient_email=f"c{n}@example.com", payload={})
    nudges = []
    monkeypatch.setattr("ops.dispatch.outbox_nudge", lambda: nudges.append(1))
    call_command("dispatch_outbox")
    assert "claimed 2: sent 2" in capsys.readouterr().out
    assert len(smtp_server.messages) == 2
    # A full batch, yet no Celery message: the command is the dispatcher (with no worker running,
    # why one dispatches by hand, messages would pile up in the broker).
    assert nudges == []



def test_dispatch_outbox_command_sends_what_died_of_a_mail_server_outage_once_it_is_back(smtp_server, capsys,
                                                                                        settings):
    """An operator dispatching by hand (no worker running) gets what a worker's dispatcher
    does: events that went DEAD only because the mail server was away go out again."""
    settings.OUTBOX_MAX_RETRIES = 1
    outbox_enqueue(event_type=EventType.GENERIC, recipient_email="late@example.com",
                   payload={"subject": "s", "message": "m"})
    smtp_server.stop()
    call_command("dispatch_outbox")
    assert OutboxEvent.objects.get().status == OutboxStatus.DEAD

    smtp_server.start()
    call_command("dispatch_outbox")

    assert OutboxEvent.objects.get().status == OutboxStatus.SENT
    assert [m["to"] for m in smtp_server.messages] == [["late@example.com"]]
    assert "revived 1 after a mail server outage" in capsys.readouterr().out