"""Bookable items and their ordered price tiers.

Seat counters (`BookableItem.sold`, `PriceTier.sold`) count active bookings (PENDING +
CONFIRMED). They are changed only by UPDATEs in the writing services, and the CHECK
constraints below make the database refuse an oversell: a booking's claim is a plain increment
that fails when the item or tier is full (catalog.seats.item_seat_claim).
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class BookableItem(models.Model):
    organizer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="organized_items"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    start_time = models.DateTimeField(db_index=True)
    end_time = models.DateTimeField()
    location = models.CharField(max_length=255, blank=True, default="")
    capacity = models.PositiveIntegerField()
    is_private = models.BooleanField(default=False)
    category = models.CharField(max_length=100, null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    # Active bookings (PENDING + CONFIRMED) over all tiers; the item-level seat counter.
    sold = models.PositiveIntegerField(default=0, editable=False)
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start_time", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(end_time__gt=F("start_time")), name="item_time_range_valid"),
            models.CheckConstraint(condition=Q(capacity__gte=1), name="item_capacity_positive"),
            models.CheckConstraint(condition=Q(sold__lte=F("capacity")), name="item_sold_within_capacity"),
        ]
        indexes = [models.Index(fields=["organizer", "start_time"], name="item_organizer_start")]

    def __str__(self):
        return f"{self.name} ({self.start_time:%Y-%m-%d %H:%M})"


class PriceTier(models.Model):
    item = models.ForeignKey(BookableItem, on_delete=models.CASCADE, related_name="tiers")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    max_capacity = models.PositiveIntegerField()
    # Active bookings (PENDING + CONFIRMED) in this tier.
    sold = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["item_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["item", "name"], name="tier_name_unique_per_item"),
            models.CheckConstraint(condition=Q(price__gte=0), name="tier_price_not_negative"),
            models.CheckConstraint(condition=Q(sold__lte=F("max_capacity")), name="tier_sold_within_max"),
        ]

    def __str__(self):
        return f"{self.name} @ {self.price}"
