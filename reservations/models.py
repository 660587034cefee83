"""Bookings. `start_time`/`end_time` copy the item's times so PostgreSQL can refuse two
overlapping CONFIRMED bookings of one user with an exclusion constraint (migration 0002)."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class BookingStatus(models.TextChoices):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    COMPLETED = "COMPLETED"


# Bookings that hold a seat (contract §5: availableCapacity = capacity − PENDING − CONFIRMED).
ACTIVE_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED)


class Booking(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings")
    item = models.ForeignKey("catalog.BookableItem", on_delete=models.PROTECT, related_name="bookings")
    tier = models.ForeignKey(
        "catalog.PriceTier", null=True, blank=True, on_delete=models.SET_NULL, related_name="bookings"
    )
    # The tier's name when booked: what the booking bought, kept when the organizer later removes
    # a tier that no active booking holds (`tier` then becomes NULL). NULL for a free item.
    tier_name = models.CharField(max_length=100, null=True, blank=True, editable=False)
    price_paid = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=16, choices=BookingStatus.choices, default=BookingStatus.CONFIRMED)
    booking_date = models.DateTimeField(auto_now_add=True, db_index=True)
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    # Revisions announced to the booker since the confirmation (a move, the cancellation): the
    # calendar invitation's SEQUENCE, so each update outranks the one before it.
    revision = models.PositiveIntegerField(default=0, editable=False)
    # The client's Idempotency-Key of the request that made it: a retry with the same key gets
    # this booking back instead of a second attempt (unique per user).
    request_key = models.CharField(max_length=64, null=True, blank=True, editable=False)
    # When its reminder email was queued (reservations.reminders), or when it was confirmed if
    # that was inside the reminder window (the confirmation stood for it); cleared when the item
    # moves, so the new times get their own reminder.
    reminded_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-booking_date", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=BookingStatus.values), name="booking_status_valid"),
            models.CheckConstraint(condition=Q(end_time__gt=F("start_time")), name="booking_time_range_valid"),
            models.CheckConstraint(condition=Q(price_paid__gte=0), name="booking_price_not_negative"),
            models.UniqueConstraint(fields=["user", "request_key"], condition=Q(request_key__isnull=False),
                                    name="booking_request_key_unique"),
        ]
        indexes = [
            models.Index(fields=["user", "status", "start_time"], name="booking_user_status_start"),
            models.Index(fields=["item", "status"], name="booking_item_status"),
            # The reminder sweep's range scan: confirmed bookings not reminded yet, by start.
            models.Index(fields=["start_time"], name="booking_reminder_due",
                         condition=Q(status=BookingStatus.CONFIRMED, reminded_at__isnull=True)),
        ]

    def __str__(self):
        return f"Booking #{self.pk} {self.status}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES
