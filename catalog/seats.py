"""The seat counters bookings claim and release, and the item lock taken before them.

Lock order across the project (see catalog.services): user row → item row → booking rows → tier
rows. Every change of a tier counter happens while its item row is locked by the same transaction.
"""

from django.db import IntegrityError, connection
from django.db.models import F

from bookings_project.db import constraint_name, db_value

from .cache import catalog_changed
from .exceptions import CapacityExceeded, TierSoldOut, UnknownTier
from .models import BookableItem, PriceTier


def item_tier_offer(*, item: BookableItem, tiers: list[PriceTier], tier_name: str | None = None) -> PriceTier | None:
    """The tier a booking would get now, from the item and its tiers (in order) as read, without
    a lock: the named tier, or the first tier with a free seat. None: a free item. 400 for an
    unknown or sold-out tier, or a full item."""
    if tier_name is not None:
        tiers = [t for t in tiers if t.name == tier_name]
        if not tiers:
            raise UnknownTier(tier_name)
    if item.sold >= item.capacity:
        raise CapacityExceeded()
    for tier in tiers:
        if tier.sold < tier.max_capacity:
            return tier
    if tier_name is not None:
        raise TierSoldOut(tier_name)
    if tiers:
        raise CapacityExceeded()
    return None


def item_seat_claim(*, item: BookableItem, tier: PriceTier | None) -> None:
    """Take one seat of `item` and `tier` as the booking read them: the last writes of the
    booking transaction (lock order item → tier).

    Increments that the CHECK constraints (sold ≤ capacity) refuse when the item or the tier is
    full. An item changed in any way since the read (deleted, moved, its tiers edited — a free
    item that became paid included), or a tier repriced, has its increment pushed past its
    capacity so it is refused the same way, and a tier removed since the read fails the
    booking's foreign key at COMMIT. So every refusal is an IntegrityError, never a silent "0
    rows" or a booking at stale times or prices: the booking can send these writes with its
    COMMIT without reading their results (bookings_project.transactions.atomic_with_tail) and
    retry from a fresh read when `seat_claim_refused(exc)`.
    """
    catalog_changed()
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_ITEM_SQL, [db_value(BookableItem, "updated_at", item.updated_at), item.pk])
        if tier is not None:
            cursor.execute(_CLAIM_TIER_SQL, [db_value(PriceTier, "price", tier.price), tier.pk])


# Raw SQL, the same on PostgreSQL and SQLite: the ORM would spend more building these two
# statements than the server spends running them, on the hottest path there is.
# Every change of an item (its times, tiers, deletion) goes through item.save(), which moves
# updated_at (auto_now); seat counters are written without it. So "updated_at as read" means
# "nothing but other bookings changed the item since": a column of the row itself, which
# PostgreSQL re-checks on the newest row version after waiting for an editor's lock (a subquery
# on the tiers would still see the statement's older snapshot).
_CLAIM_ITEM_SQL = f"""
    UPDATE {BookableItem._meta.db_table}
    SET sold = sold + CASE WHEN deleted_at IS NULL AND updated_at = %s THEN 1 ELSE capacity + 1 END
    WHERE id = %s"""
_CLAIM_TIER_SQL = f"""
    UPDATE {PriceTier._meta.db_table}
    SET sold = sold + CASE WHEN price = %s THEN 1 ELSE max_capacity + 1 END
    WHERE id = %s"""

SEAT_CONSTRAINTS = frozenset({"item_sold_within_capacity", "tier_sold_within_max"})


def seat_claim_refused(exc: IntegrityError) -> bool:
    """The claim was refused: the item or tier filled or changed since it was read."""
    return constraint_name(exc) in SEAT_CONSTRAINTS


def item_seat_release(*, item_id, tier_id=None) -> None:
    """Give one seat back (cancellation); the caller's transaction holds the item row lock."""
    catalog_changed()
    BookableItem.objects.filter(pk=item_id, sold__gt=0).update(sold=F("sold") - 1)
    if tier_id is not None:
        PriceTier.objects.filter(pk=tier_id, sold__gt=0).update(sold=F("sold") - 1)


def item_seats_release_all(*, item_id) -> None:
    """Every active booking of the item was just cancelled (an item deleted): it and its tiers
    hold no seat. The caller's transaction holds the item row lock."""
    catalog_changed()
    BookableItem.objects.filter(pk=item_id).update(sold=0)
    PriceTier.objects.filter(item_id=item_id).update(sold=0)


def item_lock(*, item_id) -> None:
    """Take the item row lock first, so cancellations follow the project's lock order. NO KEY
    UPDATE: compatible with the KEY SHARE lock a concurrent booking's INSERT holds on the item
    (a FOR UPDATE here could deadlock with that booking's counter UPDATE)."""
    list(BookableItem.objects.select_for_update(no_key=True).filter(pk=item_id).values_list("pk", flat=True))
