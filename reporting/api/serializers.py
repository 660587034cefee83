"""Booking API shapes for reports and recommendations (seed 004 §4, §6)."""

from rest_framework import serializers

from bookings_project.validation import StrictCharField
from catalog.api.serializers import ItemResponseSerializer

from ..selectors import CANDIDATE_CAP, MATCH_CAP, PROFILE_CAP, booking_day_window

MAX_LIMIT = 50
DATE_FORMATS = ["%Y-%m-%d"]


def _bounding_day(value, **day):
    """A day whose local midnight the database cannot store (a 500 otherwise) is a field error."""
    try:
        booking_day_window(**day)
    except ValueError:
        raise serializers.ValidationError("Date out of range in the server's time zone") from None
    return value


class AsciiDateField(serializers.DateField):
    """YYYY-MM-DD in ASCII digits: strptime's %Y reads fullwidth or Arabic-Indic digits too."""

    def to_internal_value(self, value):
        if isinstance(value, str) and not value.isascii():
            self.fail("invalid", format="YYYY-MM-DD")
        return super().to_internal_value(value)


class RevenueQuerySerializer(serializers.Serializer):
    startDate = AsciiDateField(source="start_date", required=False, input_formats=DATE_FORMATS,
                                      help_text="First booking day counted (YYYY-MM-DD, in TIME_ZONE), inclusive")
    endDate = AsciiDateField(source="end_date", required=False, input_formats=DATE_FORMATS,
                                    help_text="Last booking day counted (YYYY-MM-DD, in TIME_ZONE), inclusive")
    itemId = serializers.IntegerField(source="item_id", required=False, min_value=1, max_value=2**63 - 1,
                                      help_text="Only this item (deleted items keep their revenue)")

    def validate_startDate(self, value):
        return _bounding_day(value, start_date=value)

    def validate_endDate(self, value):
        return _bounding_day(value, end_date=value)

    def validate(self, attrs):
        start, end = attrs.get("start_date"), attrs.get("end_date")
        if start and end and start > end:
            raise serializers.ValidationError({"endDate": ["Must not be before startDate"]})
        return attrs


class ItemRevenueDetailSerializer(serializers.Serializer):
    itemId = serializers.IntegerField(source="item_id")
    itemName = StrictCharField(source="item_name")
    itemRevenue = serializers.DecimalField(source="revenue", max_digits=20, decimal_places=2)
    numberOfBookings = serializers.IntegerField(source="bookings")


class RevenueReportSerializer(serializers.Serializer):
    totalRevenue = serializers.DecimalField(source="total", max_digits=20, decimal_places=2)
    reportDetails = ItemRevenueDetailSerializer(source="details", many=True)


class RecommendationQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=5, min_value=1, max_value=MAX_LIMIT,
                                     help_text=f"How many items (1–{MAX_LIMIT}, default 5)")


class RecommendedItemSerializer(ItemResponseSerializer):
    reason = StrictCharField(help_text="Why this item was recommended")

    class Meta:
        ref_name = "RecommendedItemResponse"


RECOMMENDATION_DESCRIPTION = (
    "Content-based: a profile of the caller's last "
    f"{PROFILE_CAP} CONFIRMED/COMPLETED bookings (organizer, category, tags, location, TF-IDF words of "
    f"name/description, recent bookings weigh more) scores upcoming public items with a free seat that the "
    f"caller neither organizes nor has booked: the next {CANDIDATE_CAP} by start time and the next {MATCH_CAP} "
    "sharing an organizer, category or location with the profile; highest score first, ties by start time. "
    "No history: the most-booked upcoming items. `reason` explains each item."
)
