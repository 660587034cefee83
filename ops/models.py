import json
import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


class Severity(models.TextChoices):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class SystemLog(models.Model):
    """A significant system event (seed 000, story 3). Append-only."""

    timestamp = models.DateTimeField(db_index=True)
    event_type = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    message = models.TextField()
    # The subject user as reported (string, may name a user of another system); not a FK so
    # entries survive anything that happens to accounts.
    user_id = models.CharField(max_length=64, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    additional_data = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True, default="")
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["event_type", "-timestamp"], name="log_type_ts"),
            models.Index(fields=["severity", "-timestamp"], name="log_severity_ts"),
            models.Index(fields=["user_id", "-timestamp"], name="log_user_ts"),
        ]

    def __str__(self):
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.severity} {self.event_type}: {self.message[:60]}"


class DocumentBodyDecoder(json.JSONDecoder):
    """Reads a document's body. The customer side may write any JSON its database takes: nested
    thousands of levels deep (PostgreSQL), or an integer of more than 4,300 digits (`1e5000` in
    jsonb is one); Python's parser stops near 1,000 levels with a RecursionError, and refuses
    such an integer with a ValueError, either of which failed every read of that document and
    its batch — the sync, every reconciliation — for good. Such a body is read as its JSON text:
    a body that is not an object, which reconciliation replaces and records like any other.
    (Text that is not JSON at all is read as itself, as Django's JSONField does.)"""

    def decode(self, s, *args, **kwargs):
        try:
            return super().decode(s, *args, **kwargs)
        except (RecursionError, ValueError):
            return s


class DocumentBodyField(models.JSONField):
    """A document's body, read as bytes on SQLite and decoded there, invalid UTF-8 as U+FFFD.
    SQLite keeps whatever the customer side stores in the column: a BLOB, or text that is not
    UTF-8, which Python's sqlite3 refuses to read (an OperationalError failing every read of
    that document: its syncs, its reconciliation, every whole-type run). Such a body differs
    from any the system writes, so it is replaced like any other. (PostgreSQL's jsonb holds
    UTF-8 text only.)"""

    def select_format(self, compiler, sql, params):
        sql, params = super().select_format(compiler, sql, params)
        if compiler.connection.vendor == "sqlite":
            return f"CAST({sql} AS BLOB)", params
        return sql, params

    def from_db_value(self, value, expression, connection):
        if isinstance(value, (bytes, memoryview)):
            value = bytes(value).decode("utf-8", "replace")
        return super().from_db_value(value, expression, connection)


class Document(models.Model):
    """The customer-facing document store (contract §7). Lives on the `documents` database;
    its table is a public interface, so its name and columns are fixed: exactly entity_type,
    entity_id, body, version, updated_at, with (entity_type, entity_id) as the unique key."""

    pk = models.CompositePrimaryKey("entity_type", "entity_id")
    entity_type = models.TextField()
    entity_id = models.TextField()
    body = DocumentBodyField(decoder=DocumentBodyDecoder)
    # Database defaults too: the customer side may INSERT only entity_type, entity_id and body.
    version = models.IntegerField(default=1, db_default=1)
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "documents"

    def __str__(self):
        return f"{self.entity_type}:{self.entity_id} v{self.version}"


class OutboxStatus(models.TextChoices):
    PENDING = "PENDING"
    SENT = "SENT"
    DEAD = "DEAD"


class OutboxEvent(models.Model):
    """A side effect (an email, a document refresh) written in the same transaction as the
    change that caused it, and delivered at least once by the dispatcher."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=64, db_index=True)
    recipient_email = models.EmailField(max_length=254, blank=True, default="")
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    retry_count = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Set while a dispatcher holds the event (the end of its lease), cleared when it records the
    # outcome. It fences that record: a dispatcher whose lease ran out (the event was claimed
    # again, or revived by an operator) writes nothing over the newer holder's outcome.
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    # The last failure was the mail server's (unreachable, timed out, "try later"), not the
    # event's: a DEAD event with it set goes out again on its own once the server answers
    # (ops.revival.outbox_revive_after_outage).
    transient_failure = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The seed (004) tells testers to "query the outbox_events table": its name is public.
        db_table = "outbox_events"
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="outbox_due"),
        ]

    def __str__(self):
        return f"{self.event_type} → {self.recipient_email or '-'} ({self.status})"


class JobType(models.TextChoices):
    NOTIFICATION = "NOTIFICATION"
    RECONCILIATION = "RECONCILIATION"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


# A reconciliation of a whole type (no entityId) that completed: GET /metrics reads the newest
# per type. Its own (partial, tiny) index, as the single-entity runs since — or, with none of a
# type ever completed, every completed reconciliation — would otherwise be read on each scrape.
WHOLE_TYPE_RECONCILIATION_DONE = models.Q(type=JobType.RECONCILIATION, status=JobStatus.COMPLETED,
                                          params__entityId=None)


class Job(models.Model):
    """A background job (core API /jobs). Runs on a worker soon after creation (through the
    outbox), or at once through `PUT /jobs/{id}/execute`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=32, choices=JobType.choices)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    # NOTIFICATION: {template, recipientEmail, subject, message, data}
    # RECONCILIATION: {entityType, entityId}  (entityType as sent: item/launch/booking)
    params = models.JSONField(default=dict)
    # RECONCILIATION: {changesLog, summary: {checked, created, updated, deleted, unchanged}}
    result = models.JSONField(default=dict, blank=True)
    error_message = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # A long job runs in slices (ops.jobs): set while it waits between two, its progress saved in
    # `result` and its next slice queued in the outbox. Still `running` to the API.
    paused_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["type", "status", "-created_at"], name="job_type_status_ts"),
            models.Index(fields=["status", "-created_at"], name="job_status_ts"),
            models.Index(fields=["-created_at"], name="job_created"),
            models.Index(fields=["-completed_at"], condition=WHOLE_TYPE_RECONCILIATION_DONE,
                         name="job_whole_recon_done"),
        ]

    def __str__(self):
        return f"{self.type} {self.id} ({self.status})"


class ReconciliationChange(models.Model):
    """One repaired difference between a document and its relational row."""

    class Action(models.TextChoices):
        CREATED = "created"
        UPDATED = "updated"
        DELETED = "deleted"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="changes")
    entity_type = models.CharField(max_length=16)
    # Any text, as the customer side may write it into the documents table (its ids and keys).
    entity_id = models.TextField()
    action = models.CharField(max_length=16, choices=Action.choices)
    field = models.TextField(blank=True, default="")
    document_value = models.JSONField(null=True, blank=True)
    relational_value = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["entity_type", "entity_id"], name="recon_change_entity")]

    def __str__(self):
        return f"{self.entity_type}:{self.entity_id} {self.action} {self.field}"
