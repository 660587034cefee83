"""Test data for the outbox tests: accounts registered over HTTP (each writes a USER_REGISTERED
event), and PENDING events made due now instead of at the end of their backoff."""

from django.utils import timezone

from ops.models import OutboxEvent, OutboxStatus


def register(api_client, name):
    response = api_client.post("/api/v1/user", {"username": name, "email": f"{name}@example.com",
                                                "password": "S3cure-pass!"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def make_due():
    """As if the waits were over: every PENDING event due now, and no dispatcher leaving the mail
    server or the documents database alone any more (ops.handlers)."""
    import ops.handlers

    OutboxEvent.objects.filter(status=OutboxStatus.PENDING).update(next_attempt_at=timezone.now())
    ops.handlers.DOCUMENTS_REST.end()
    ops.handlers.MAIL_REST.end()
