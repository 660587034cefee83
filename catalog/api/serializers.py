"""Booking API shapes for items (seed 004 §6, plus optional `category` and `tags`).
Input fields carry `source=` so validated data maps straight onto service arguments."""

from decimal import Decimal

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from bookings_project.datetimes import LocalDateTimeField
from bookings_project.text import validate_plain_text, validate_single_line
from bookings_project.validation import StrictBooleanField, StrictCharField, StrictDecimalField, StrictIntegerField

MAX_CAPACITY = 1_000_000
MAX_PRICE = Decimal("99999999.99")
MONEY = {"max_digits": 10, "decimal_places": 2}


class PriceTierSerializer(serializers.Serializer):
    tier = StrictCharField(source="name", max_length=100, validators=[validate_single_line])
    price = StrictDecimalField(**MONEY, min_value=Decimal("0"), max_value=MAX_PRICE)
    maxCapacity = StrictIntegerField(source="max_capacity", min_value=1, max_value=MAX_CAPACITY)


# Named without "Request": the schema adds that suffix to request bodies ("BookingRequestRequest" otherwise).
@extend_schema_serializer(component_name="Item")
class ItemRequestSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, validators=[validate_single_line])
    description = StrictCharField(max_length=10_000, allow_blank=True, allow_null=True, required=False,
                                  default="", validators=[validate_plain_text], help_text="null: empty")
    startTime = LocalDateTimeField(source="start_time")
    endTime = LocalDateTimeField(source="end_time")
    location = StrictCharField(max_length=255, allow_blank=True, allow_null=True, required=False, default="",
                               validators=[validate_single_line], help_text="null: empty")
    capacity = StrictIntegerField(min_value=1, max_value=MAX_CAPACITY)
    isPrivate = StrictBooleanField(source="is_private", required=False, default=False)
    # The list may be null, its elements not (many=True would pass allow_null down to them).
    priceTiers = serializers.ListSerializer(child=PriceTierSerializer(), source="price_tiers", required=False,
                                            allow_null=True, max_length=50,
                                            help_text="Sold in the listed order; omitted, null or [] = a free "
                                                      "item. On update, omitted keeps the current tiers "
                                                      "(null or [] removes them).")
    category = StrictCharField(max_length=100, required=False, allow_null=True, allow_blank=True,
                               validators=[validate_single_line])
    tags = serializers.ListField(child=StrictCharField(max_length=50, validators=[validate_single_line]),
                                 required=False, allow_null=True, max_length=30, help_text="null: none")

    # null means "empty" for the optional texts, tags and tiers (as for `category`).
    def validate_description(self, value):
        return value or ""

    def validate_location(self, value):
        return value or ""

    def validate_tags(self, value):
        return value or []

    def validate_priceTiers(self, value):  # noqa: N802 - DRF names the hook after the field
        return value or []


@extend_schema_serializer(component_name="ItemUpdate")
class ItemUpdateSerializer(ItemRequestSerializer):
    """PUT: every top-level field optional (left out = unchanged); a tier list, when sent, is
    complete. (Not DRF's partial mode, which would also relax the nested tier fields.)"""

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            field.required, field.default = False, serializers.empty
        return fields


class ItemResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = StrictCharField()
    description = StrictCharField()
    startTime = LocalDateTimeField(source="start_time")
    endTime = LocalDateTimeField(source="end_time")
    location = StrictCharField()
    capacity = serializers.IntegerField()
    organizerId = serializers.IntegerField(source="organizer_id")
    organizerUsername = StrictCharField(source="organizer.username")
    isPrivate = serializers.BooleanField(source="is_private")
    priceTiers = PriceTierSerializer(source="tiers.all", many=True)
    currentPrice = serializers.DecimalField(source="current_price", **MONEY)
    availableCapacity = serializers.IntegerField(source="available_capacity")
    category = StrictCharField(allow_null=True)
    tags = serializers.ListField(child=StrictCharField())
    createdAt = LocalDateTimeField(source="created_at", seconds=True)
    updatedAt = LocalDateTimeField(source="updated_at", seconds=True)


class TimeWindowQuerySerializer(serializers.Serializer):
    """`from`/`to` of a list query: rows whose time overlaps [from, to) — they end after `from`
    and start before `to`. A bare date is that local day: `to=2031-09-15` includes the day."""

    def get_fields(self):
        fields = super().get_fields()  # `from` is a Python keyword, so these two are added here
        fields["from"] = LocalDateTimeField(source="start_from", required=False,
                                            help_text="Those that end after this time (a bare date: "
                                                      "its start, in TIME_ZONE)")
        fields["to"] = LocalDateTimeField(source="start_to", required=False, day_end=True,
                                          help_text="Those that start before this time (a bare date: "
                                                    "before its end, so that day's are included)")
        return fields

    def validate(self, attrs):
        start, end = attrs.get("start_from"), attrs.get("start_to")
        if start is not None and end is not None and end < start:
            raise serializers.ValidationError({"to": ["Must not be before `from`"]})
        return attrs


class ItemFilterSerializer(TimeWindowQuerySerializer):
    organizerId = serializers.IntegerField(source="organizer_id", required=False, min_value=1,
                                           max_value=2**63 - 1)
    onlyMyItems = serializers.BooleanField(source="only_mine", required=False, default=False,
                                           help_text="true: only the caller's items (needs a token)")
    location = StrictCharField(required=False, max_length=255)
    category = StrictCharField(required=False, max_length=100)
    q = StrictCharField(required=False, max_length=200, help_text="Words, each found in the name or the description "
                                                                           "(any order, case-insensitive)")


class AvailabilitySerializer(serializers.Serializer):
    itemId = serializers.IntegerField(source="id")
    itemName = StrictCharField(source="name")
    totalCapacity = serializers.IntegerField(source="capacity")
    bookedSlots = serializers.IntegerField(source="sold")
    availableSlots = serializers.IntegerField(source="available_capacity")
