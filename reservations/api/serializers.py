from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from bookings_project.datetimes import LocalDateTimeField
from catalog.api.serializers import TimeWindowQuerySerializer
from bookings_project.validation import ChoiceField, StrictCharField

from ..models import BookingStatus


# Named without "Request": the schema adds that suffix to request bodies ("BookingRequestRequest" otherwise).
@extend_schema_serializer(component_name="Booking")
class BookingRequestSerializer(serializers.Serializer):
    priceTier = StrictCharField(source="tier_name", max_length=100, required=False, allow_null=True,
                                help_text="Optional: a tier by name; omitted = the current tier")


class BookingResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    userId = serializers.IntegerField(source="user_id")
    username = StrictCharField(source="user.username")
    itemId = serializers.IntegerField(source="item_id")
    itemName = StrictCharField(source="item.name")
    bookingDate = LocalDateTimeField(source="booking_date", seconds=True)
    status = ChoiceField(choices=BookingStatus.choices)
    pricePaid = serializers.DecimalField(source="price_paid", max_digits=10, decimal_places=2)
    # Beyond the seed's shape: what was bought and when it takes place, readable from the booking
    # alone (a deleted or private item's own route is a 404 to its bookers).
    priceTier = StrictCharField(source="tier_name", allow_null=True,
                                help_text="The tier's name when booked; null for a free item")
    startTime = LocalDateTimeField(source="start_time", help_text="The item's start (follows the item when it moves)")
    endTime = LocalDateTimeField(source="end_time", help_text="The item's end")


class _StatusFilter(serializers.Serializer):
    status = serializers.ListField(child=ChoiceField(choices=BookingStatus.choices), source="statuses",
                                   required=False, max_length=len(BookingStatus.choices),
                                   help_text="Only these statuses (repeat the parameter for several: "
                                             "`?status=CONFIRMED&status=PENDING`)")


class ItemBookingsQuerySerializer(_StatusFilter):
    pass


class MyBookingsQuerySerializer(_StatusFilter, TimeWindowQuerySerializer):
    """`from`/`to` select bookings whose item overlaps [from, to): `?from=<now>` is what is still
    to come (or under way)."""


class BookingStatusUpdateSerializer(serializers.Serializer):
    status = ChoiceField(choices=BookingStatus.choices)


class ConflictQuerySerializer(serializers.Serializer):
    startTime = LocalDateTimeField(source="start")
    endTime = LocalDateTimeField(source="end", day_end=True)  # a bare date: up to the end of that day

    def validate(self, attrs):
        if attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"endTime": ["Must be after startTime"]})
        return attrs


class ConflictingBookingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    itemName = StrictCharField(source="item.name")
    startTime = LocalDateTimeField(source="start_time")
    endTime = LocalDateTimeField(source="end_time")


class ConflictCheckResponseSerializer(serializers.Serializer):
    userId = serializers.IntegerField()
    hasConflict = serializers.BooleanField()
    conflictingBookings = ConflictingBookingSerializer(many=True)
