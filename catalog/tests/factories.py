"""Test data for items: request payloads and items made through the service."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from catalog.services import item_create

# Far enough ahead to be bookable whenever the suite runs; the seed's 2025 dates are past.
FUTURE = datetime(2031, 9, 15, 10, 0)


def local_iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def item_payload(**overrides) -> dict:
    """The seed's sample BookableItemRequest, moved into the future."""
    payload = {
        "name": "Spring Boot Workshop",
        "description": "An interactive workshop on Spring Boot basics.",
        "startTime": local_iso(FUTURE),
        "endTime": local_iso(FUTURE + timedelta(hours=2)),
        "location": "Online via Zoom",
        "capacity": 50,
        "isPrivate": False,
        "priceTiers": [
            {"tier": "Early Bird", "price": 49.99, "maxCapacity": 20},
            {"tier": "Regular", "price": 59.99, "maxCapacity": 30},
        ],
    }
    payload.update(overrides)
    return payload


def make_item(organizer, *, start=None, hours=2, capacity=10, tiers=(), is_private=False, name="Item", **extra):
    """tiers: (name, price, max_capacity) triples; none = a free item."""
    start = start or timezone.make_aware(FUTURE)
    return item_create(
        organizer=organizer, name=name, start_time=start, end_time=start + timedelta(hours=hours),
        capacity=capacity, is_private=is_private,
        price_tiers=[{"name": n, "price": Decimal(str(p)), "max_capacity": m} for n, p, m in tiers], **extra,
    )
