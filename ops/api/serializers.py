from rest_framework import serializers

from bookings_project.datetimes import UtcDateTimeField, parse_api_datetime

from ..models import Severity


class CoreDateTimeField(serializers.DateTimeField):
    """Core API datetime: ISO 8601 in, UTC with Z out."""

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601")
        try:
            return parse_api_datetime(value)
        except ValueError:
            self.fail("invalid", format="ISO 8601")

    def to_representation(self, value):
        return UtcDateTimeField().to_representation(value)


class LogCreateSerializer(serializers.Serializer):
    eventType = serializers.RegexField(r"^[A-Za-z0-9_.:\-]{1,64}$", max_length=64)
    severity = serializers.ChoiceField(choices=Severity.values)
    message = serializers.CharField(max_length=10_000)
    userId = serializers.CharField(max_length=64, required=False, allow_blank=True)
    ipAddress = serializers.IPAddressField(required=False, allow_null=True)
    additionalData = serializers.DictField(required=False)


class LogSerializer(serializers.Serializer):
    id = serializers.CharField()
    timestamp = UtcDateTimeField()
    eventType = serializers.CharField(source="event_type")
    severity = serializers.CharField()
    message = serializers.CharField()
    userId = serializers.SerializerMethodField()
    ipAddress = serializers.CharField(source="ip_address", allow_null=True)
    additionalData = serializers.DictField(source="additional_data")

    def get_userId(self, obj) -> str | None:
        return obj.user_id or None


class CoreListQuerySerializer(serializers.Serializer):
    """Query of a core API list: `from`/`to` (ISO 8601, inclusive), `page`, `pageSize`."""

    from_ = CoreDateTimeField(required=False, help_text="Inclusive lower bound (ISO 8601)")
    to = CoreDateTimeField(required=False, help_text="Inclusive upper bound (ISO 8601)")
    page = serializers.IntegerField(required=False, min_value=1, default=1)
    pageSize = serializers.IntegerField(required=False, min_value=1, max_value=100, default=10)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # `from` is a Python keyword
        return fields

    def validate(self, attrs):
        if attrs.get("from") and attrs.get("to") and attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"to": ["Must not be before `from`"]})
        return attrs


class LogQuerySerializer(CoreListQuerySerializer):
    eventType = serializers.CharField(required=False, max_length=64)
    severity = serializers.ChoiceField(choices=Severity.values, required=False)
    userId = serializers.CharField(required=False, max_length=64)


class LogListSerializer(serializers.Serializer):
    logs = LogSerializer(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    pageSize = serializers.IntegerField()
