from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from bookings_project.datetimes import UtcDateTimeField
from bookings_project.pagination import PageQuerySerializer
from bookings_project.validation import BoundedObjectField, ChoiceField, StrictCharField, StrictRegexField

from ..emails import EMAIL_TEMPLATES, ics_datetime
from ..jobs import ENTITY_TYPES
from ..models import JobStatus, JobType, Severity

MAX_ADDITIONAL_DATA = 16_384  # bytes of additionalData as JSON
MAX_NOTIFICATION_DATA = 16_384  # bytes of a notification's data as JSON (listed in its email)


class LogCreateSerializer(serializers.Serializer):
    eventType = StrictRegexField(r"^[A-Za-z0-9_.:\-]{1,64}$", max_length=64)
    severity = ChoiceField(choices=Severity.choices)
    message = StrictCharField(max_length=10_000)
    userId = StrictRegexField(r"^[A-Za-z0-9_.@+:\-]{0,64}$", max_length=64, required=False, allow_blank=True,
                              allow_null=True,
                              help_text="The user the event concerns (the entry also records who "
                                        "sent it: reportedBy)")
    ipAddress = serializers.IPAddressField(required=False, allow_null=True)
    additionalData = BoundedObjectField(max_bytes=MAX_ADDITIONAL_DATA, required=False)


class LogSerializer(serializers.Serializer):
    id = StrictCharField()
    timestamp = UtcDateTimeField()
    eventType = StrictCharField(source="event_type")
    severity = ChoiceField(choices=Severity.choices)
    message = StrictCharField()
    userId = serializers.SerializerMethodField()
    ipAddress = StrictCharField(source="ip_address", allow_null=True)
    additionalData = serializers.DictField(source="additional_data")
    reportedBy = serializers.SerializerMethodField(
        help_text="Id of the account the entry comes from: the sender of POST /logs, or the account whose action "
                  "it records (a role change, a deletion, a data export, a password check …); null: the system's own "
                  "(a failed login, a registration)")

    def get_userId(self, obj) -> str | None:
        return obj.user_id or None

    def get_reportedBy(self, obj) -> str | None:
        return None if obj.reported_by_id is None else str(obj.reported_by_id)


class CoreListQuerySerializer(PageQuerySerializer):
    """Query of a core API list: `from`/`to` (ISO 8601, inclusive), `page`, `pageSize`."""

    from_ = UtcDateTimeField(required=False, help_text="Inclusive lower bound (ISO 8601)")
    to = UtcDateTimeField(required=False, day_end=True,
                          help_text="Inclusive upper bound (ISO 8601; a bare date includes that whole day, UTC, "
                                    "and a time in whole seconds or minutes that whole second or minute)")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # `from` is a Python keyword
        return fields

    def validate(self, attrs):
        if attrs.get("from") and attrs.get("to") and attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"to": ["Must not be before `from`"]})
        return attrs


class LogQuerySerializer(CoreListQuerySerializer):
    eventType = StrictCharField(required=False, max_length=64)
    severity = ChoiceField(choices=Severity.choices, required=False)
    userId = StrictCharField(required=False, max_length=64)


class LogListSerializer(serializers.Serializer):
    logs = LogSerializer(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    pageSize = serializers.IntegerField()


# --- Jobs, notifications, reconciliation ------------------------------------------------------

ENTITY_TYPE_CHOICES = list(ENTITY_TYPES)  # item, launch (= item), booking


NOTIFICATION_TEXTS = {"subject": 200, "message": 20_000}  # data keys the email shows as text → max length
NOTIFICATION_TIMES = ("startTime", "endTime", "bookingDate")  # data keys a booking email's .ics reads (null: none)


# Named without "Request": the schema adds that suffix to request bodies ("BookingRequestRequest" otherwise).
@extend_schema_serializer(component_name="Notification")
class NotificationRequestSerializer(serializers.Serializer):
    type = ChoiceField(choices=EMAIL_TEMPLATES)
    recipient = serializers.EmailField(max_length=254)
    data = BoundedObjectField(max_bytes=MAX_NOTIFICATION_DATA, required=False, default=dict)

    def validate_data(self, data: dict) -> dict:
        """`data` is free-form, but the keys the email itself uses must have the right shape:
        a bad one would otherwise fail every delivery attempt until the event is DEAD."""
        errors = {}
        for name, max_length in NOTIFICATION_TEXTS.items():
            if name in data and not isinstance(data[name], str):
                errors[name] = ["Must be a string"]
            elif len(data.get(name, "")) > max_length:
                errors[name] = [f"Ensure this field has no more than {max_length} characters."]
        for name in NOTIFICATION_TIMES:
            if data.get(name) is not None and ics_datetime(data[name]) is None:
                errors[name] = ["Must be an ISO 8601 date-time"]
        if errors:
            raise serializers.ValidationError(errors)
        return data


class QueuedSerializer(serializers.Serializer):
    jobId = StrictCharField()
    status = ChoiceField(choices=JobStatus.choices, help_text="`queued` when accepted")


class NotificationParamsSerializer(serializers.Serializer):
    recipientEmail = serializers.EmailField(max_length=254)
    subject = StrictCharField(max_length=200)
    message = StrictCharField(max_length=20_000)


@extend_schema_field({"oneOf": [{"type": "string", "minLength": 1, "maxLength": 64},
                                 {"type": "integer", "minimum": 0, "maximum": 2 ** 63 - 1}]})
class EntityIdField(serializers.CharField):
    """An entity's id: a string, as the seed sends it, or an integer (the ids are numbers);
    kept as text. A float or a boolean is not an id (DRF's CharField would take 2.5 as "2.5")."""

    def __init__(self, **kwargs):
        super().__init__(max_length=64, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, (bool, float)):
            raise serializers.ValidationError("Must be a string or an integer", code="invalid")
        if isinstance(data, int) and not 0 <= data <= 2 ** 63 - 1:
            raise serializers.ValidationError("An integer id is from 0 to 2^63 - 1", code="invalid")
        return super().to_internal_value(data)


class JobExecuteSerializer(serializers.Serializer):
    """PUT /jobs/{jobId}/execute: the seed sends the job's id in the body too. Optional; when
    sent it must be the job of the path (executing one job while naming another is a mistake)."""

    jobId = EntityIdField(required=False)


class ReconciliationParamsSerializer(serializers.Serializer):
    entityType = ChoiceField(choices=ENTITY_TYPE_CHOICES)
    entityId = EntityIdField(required=False, allow_null=True, help_text="Left out (or null): the whole type, in batches")


class JobCreateSerializer(serializers.Serializer):
    type = ChoiceField(choices=JobType.choices)
    notification = NotificationParamsSerializer(required=False)
    reconciliation = ReconciliationParamsSerializer(required=False)

    def validate(self, attrs):
        section = "notification" if attrs["type"] == JobType.NOTIFICATION else "reconciliation"
        if not attrs.get(section):
            raise serializers.ValidationError({section: [f"Required for {attrs['type']} jobs"]})
        return attrs


class ReconciliationEventSerializer(serializers.Serializer):
    entityType = ChoiceField(choices=ENTITY_TYPE_CHOICES)
    entityId = EntityIdField()
    action = ChoiceField(choices=["create", "update", "delete"])


class ReconciliationEventQueuedSerializer(serializers.Serializer):
    eventId = StrictCharField()
    status = ChoiceField(choices=JobStatus.choices, help_text="`queued` when accepted")


class ReconciliationChangeSerializer(serializers.Serializer):
    entityType = StrictCharField(source="entity_type")
    entityId = StrictCharField(source="entity_id")
    action = StrictCharField()
    field = StrictCharField(allow_blank=True, help_text='The top-level key that differed; "" for the whole body '
                                                        "(created, deleted, or a body that was not an object)")
    documentValue = serializers.JSONField(
        source="document_value", allow_null=True,
        help_text="The document's value before the repair (null: absent). Recorded in a form any response can "
                  "hold: NUL and unpaired surrogates become U+FFFD, a number too large for a float the string "
                  '"Infinity", nesting past 64 levels "…", and a value over 65,536 characters of JSON the first '
                  "1,000 characters of its JSON text and its length")
    relationalValue = serializers.JSONField(source="relational_value", allow_null=True,
                                            help_text="The value from the relational row, now in the document "
                                                      "(null: absent)")


class ReconciliationSummarySerializer(serializers.Serializer):
    checked = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    deleted = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class JobReconciliationSerializer(serializers.Serializer):
    entityType = StrictCharField()
    entityId = StrictCharField(allow_null=True)
    changesLog = StrictCharField(required=False)
    summary = ReconciliationSummarySerializer(required=False)
    changes = ReconciliationChangeSerializer(many=True, required=False)


class JobNotificationSerializer(serializers.Serializer):
    template = StrictCharField()
    recipientEmail = serializers.EmailField()
    subject = StrictCharField(allow_blank=True)
    message = StrictCharField(allow_blank=True)
    data = serializers.DictField(help_text="The `data` of a POST /notifications request, as sent ({} otherwise)")


MAX_CHANGES_SHOWN = 100


class JobSerializer(serializers.Serializer):
    """A job as the core API shows it; `id` and `jobId` carry the same value (the seed uses both)."""

    id = StrictCharField()
    jobId = StrictCharField(source="id")
    type = ChoiceField(choices=JobType.choices)
    status = ChoiceField(choices=JobStatus.choices)
    createdAt = UtcDateTimeField(source="created_at")
    updatedAt = UtcDateTimeField(source="updated_at")
    startedAt = UtcDateTimeField(source="started_at", allow_null=True)
    completedAt = UtcDateTimeField(source="completed_at", allow_null=True)
    error = serializers.SerializerMethodField()
    notification = serializers.SerializerMethodField()
    reconciliation = serializers.SerializerMethodField()

    def get_error(self, job) -> str | None:
        return job.error_message or None

    @extend_schema_field(JobNotificationSerializer(allow_null=True))
    def get_notification(self, job):
        if job.type != JobType.NOTIFICATION:
            return None
        p = job.params
        return {"template": p.get("template", "GENERIC"), "recipientEmail": p.get("recipientEmail"),
                "subject": p.get("subject", ""), "message": p.get("message", ""), "data": p.get("data", {})}

    @extend_schema_field(JobReconciliationSerializer(allow_null=True))
    def get_reconciliation(self, job):
        if job.type != JobType.RECONCILIATION:
            return None
        data = {"entityType": job.params.get("entityType"), "entityId": job.params.get("entityId")}
        if job.status == JobStatus.COMPLETED:
            data["changesLog"] = job.result.get("changesLog", "")
            data["summary"] = job.result.get("summary")
            if self.context.get("with_changes"):
                changes = ReconciliationChangeSerializer(job.changes.all()[:MAX_CHANGES_SHOWN], many=True).data
                for change in changes:  # `launch` is echoed as sent, in the changes too
                    change["entityType"] = data["entityType"]
                data["changes"] = changes
        elif job.status == JobStatus.RUNNING and "summary" in (job.result or {}):
            data["summary"] = job.result["summary"]  # a long run's progress so far (ops.jobs slices)
        return data


class JobQuerySerializer(CoreListQuerySerializer):
    type = ChoiceField(choices=JobType.choices, required=False)
    status = ChoiceField(choices=JobStatus.choices, required=False)


class ReconciliationJobQuerySerializer(CoreListQuerySerializer):
    status = ChoiceField(choices=JobStatus.choices, required=False)


class JobListSerializer(serializers.Serializer):
    jobs = JobSerializer(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    pageSize = serializers.IntegerField()
