"""Writes on items: create, update, soft delete. (The seat counters bookings claim and release,
and the item lock before them, are catalog.seats.)

Lock order across the project (deadlock avoidance): user row → item row → booking rows → tier rows.
Every change of a tier counter happens while its item row is locked by the same transaction.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.locking import user_lock
from bookings_project.datetimes import as_utc
from bookings_project.errors import Forbidden, ValidationFailed
from ops.models import Severity
from ops.outbox import ITEM_BOOKINGS, outbox_enqueue_document_sync
from ops.services import system_log_create
from reservations.services import booking_cancel_for_item, bookings_follow_item

from .cache import catalog_changed
from .exceptions import ItemLimitReached, ItemNotFound
from .locking import contention_guard
from .models import BookableItem, PriceTier
from .selectors import item_can_manage, item_visible


@dataclass(frozen=True)
class TierSpec:
    name: str
    price: Decimal
    max_capacity: int


def _tier_specs(price_tiers) -> list[TierSpec]:
    return [t if isinstance(t, TierSpec) else TierSpec(**t) for t in (price_tiers or [])]


def _announce_item_change(item: BookableItem, *, with_bookings: bool = False) -> None:
    """After an item changes: refresh its document (and its bookings' documents, which carry
    its name and times) and invalidate cached item lists."""
    outbox_enqueue_document_sync(("item", item.pk), *([(ITEM_BOOKINGS, item.pk)] if with_bookings else []))
    catalog_changed()


def item_validate(*, name: str, start_time: datetime, end_time: datetime, capacity: int,
                  tiers: list[TierSpec]) -> None:
    """Contract §5 rules on a whole item; every broken rule is reported at once."""
    fields: dict[str, list[str]] = {}
    if not (name or "").strip():
        fields["name"] = ["This field may not be blank."]
    if start_time >= end_time:
        fields["endTime"] = ["Must be after startTime"]
    if capacity < 1:
        fields["capacity"] = ["Must be at least 1"]
    if tiers:
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            fields.setdefault("priceTiers", []).append("Tier names must be unique")
        if any(t.price < 0 for t in tiers):
            fields.setdefault("priceTiers", []).append("Prices must be at least 0")
        if sum(t.max_capacity for t in tiers) != capacity:
            fields.setdefault("priceTiers", []).append(
                f"The tiers' maxCapacity values must sum to capacity ({capacity})")
    if fields:
        raise ValidationFailed(fields=fields)


def item_create(*, organizer, name: str, start_time: datetime, end_time: datetime, capacity: int,
                description: str = "", location: str = "", is_private: bool = False,
                price_tiers=None, category: str | None = None, tags=None) -> BookableItem:
    tiers = _tier_specs(price_tiers)
    start_time, end_time = as_utc(start_time), as_utc(end_time)  # a caller may pass any zone
    item_validate(name=name, start_time=start_time, end_time=end_time, capacity=capacity, tiers=tiers)
    with transaction.atomic():
        if end_time > timezone.now():  # a past item (a historical record) holds no place
            _check_item_limit(organizer, lock=True)
        item = BookableItem.objects.create(
            organizer=organizer, name=name, description=description or "", start_time=start_time,
            end_time=end_time, location=location or "", capacity=capacity, is_private=is_private,
            category=category or None, tags=list(tags or []),
        )
        PriceTier.objects.bulk_create(
            PriceTier(item=item, position=i, name=t.name, price=t.price, max_capacity=t.max_capacity)
            for i, t in enumerate(tiers)
        )
        _announce_item_change(item)
    return item


def _check_item_limit(organizer, *, lock: bool) -> None:
    """A business-flow limit (OWASP API6): one account may hold at most
    MAX_UPCOMING_ITEMS_PER_ORGANIZER items that have not ended, so self-registered suppliers
    cannot flood the public list; ADMINs are not limited. It is counted under the organizer's row
    lock, so parallel requests cannot both take the last place: a create takes it here (`lock`);
    a move of an ended item back into the future took it before the item's
    (_lock_organizer_if_reviving; lock order user → item)."""
    limit = settings.MAX_UPCOMING_ITEMS_PER_ORGANIZER
    if organizer.is_admin:
        return
    if lock:
        user_lock(user_id=organizer.pk)
    upcoming = BookableItem.objects.filter(organizer=organizer, deleted_at__isnull=True, end_time__gt=timezone.now())
    if upcoming.count() >= limit:
        raise ItemLimitReached(limit)


def _lock_organizer_if_reviving(*, item_id, end_time: datetime | None, now: datetime) -> bool:
    """An update moving an ended item back into the future takes a place under the organizer's
    limit, so it locks the organizer's row as a create does, before the item's (lock order
    user → item): the item lock alone let two ended items, or one and a new item, take the last
    place together. The item's organizer never changes, so it is read without a lock. True if
    the row is locked."""
    if end_time is None or end_time <= now:
        return False
    organizer_id = (BookableItem.objects.filter(pk=item_id, deleted_at__isnull=True, end_time__lte=now)
                    .values_list("organizer_id", flat=True).first())
    if organizer_id is None:
        return False
    user_lock(user_id=organizer_id)
    return True


def _lock_item_for_change(*, actor, item_id) -> BookableItem:
    # NO KEY UPDATE: does not wait for the KEY SHARE lock a booking's INSERT takes on the item.
    item = BookableItem.objects.select_for_update(no_key=True).filter(pk=item_id, deleted_at__isnull=True).first()
    if item is None or not item_visible(actor=actor, item=item):
        raise ItemNotFound()
    if not item_can_manage(actor=actor, item=item):
        raise Forbidden("Only the item's organizer or an ADMIN may change it")
    return item


def _check_booked_seats(*, item: BookableItem, capacity: int, current: list[PriceTier],
                        wanted: list[TierSpec] | None) -> None:
    """An update may not leave fewer seats than are already booked (400)."""
    fields: dict[str, list[str]] = {}
    if capacity < item.sold:
        fields["capacity"] = [f"Cannot be below the {item.sold} seats already booked"]
    tierless = item.sold - sum(t.sold for t in current)
    if wanted and tierless > 0:
        # Those bookings hold no tier: the tiers' counters could never account for their seats.
        fields.setdefault("priceTiers", []).append(
            f"Cannot add price tiers while seats are booked without a tier ({tierless})")
    if wanted is not None:
        by_name = {t.name: t for t in wanted}
        for tier in current:
            spec = by_name.get(tier.name)
            if spec is None and tier.sold:
                fields.setdefault("priceTiers", []).append(
                    f'Tier "{tier.name}" has {tier.sold} booked seats and cannot be removed')
            elif spec is not None and spec.max_capacity < tier.sold:
                fields.setdefault("priceTiers", []).append(
                    f'Tier "{tier.name}" maxCapacity cannot be below its {tier.sold} booked seats')
    if fields:
        raise ValidationFailed("The update would cut seats that are already booked", fields=fields)


def _replace_tiers(*, item: BookableItem, current: list[PriceTier], wanted: list[TierSpec]) -> None:
    """Tiers are matched by name, so booked tiers keep their identity and counters."""
    by_name = {t.name: t for t in current}
    keep = {t.name for t in wanted}
    PriceTier.objects.filter(pk__in=[t.pk for t in current if t.name not in keep]).delete()
    for position, spec in enumerate(wanted):
        tier = by_name.get(spec.name)
        if tier is None:
            PriceTier.objects.create(item=item, position=position, name=spec.name, price=spec.price,
                                     max_capacity=spec.max_capacity)
        else:
            tier.position, tier.price, tier.max_capacity = position, spec.price, spec.max_capacity
            tier.save(update_fields=["position", "price", "max_capacity"])


UPDATABLE = ("name", "description", "start_time", "end_time", "location", "capacity", "is_private",
             "category", "tags")


def item_update(*, actor, item_id, price_tiers=None, **changes) -> BookableItem:
    """PUT /items/{id}: fields left out keep their value; `price_tiers=[]` makes the item free."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise TypeError(f"item_update() got unexpected fields {sorted(unknown)}")
    changes.update({f: as_utc(changes[f]) for f in ("start_time", "end_time") if changes.get(f) is not None})
    with contention_guard(), transaction.atomic():
        organizer_locked = _lock_organizer_if_reviving(item_id=item_id, end_time=changes.get("end_time"),
                                                       now=timezone.now())
        item = _lock_item_for_change(actor=actor, item_id=item_id)
        current = list(item.tiers.order_by("position"))
        wanted = None if price_tiers is None else _tier_specs(price_tiers)
        merged = {field: changes.get(field, getattr(item, field)) for field in UPDATABLE}
        effective = wanted if wanted is not None else [
            TierSpec(t.name, t.price, t.max_capacity) for t in current]
        item_validate(name=merged["name"], start_time=merged["start_time"], end_time=merged["end_time"],
                      capacity=merged["capacity"], tiers=effective)
        _check_booked_seats(item=item, capacity=merged["capacity"], current=current, wanted=wanted)
        times_changed = (merged["start_time"], merged["end_time"]) != (item.start_time, item.end_time)
        if item.sold and merged["start_time"] <= timezone.now() < item.start_time:
            # Its upcoming bookings would start in the past: no longer cancellable ("already
            # started"), counted as revenue. Held seats first go (cancelled), or the item is
            # deleted. (An item already started may have its times corrected: history.)
            raise ValidationFailed("The update would move booked seats into the past", fields={
                "startTime": [f"Cannot move the start into the past while {item.sold} seats are booked"]})
        if item.end_time <= timezone.now() < merged["end_time"]:  # an ended item comes back (now: after the locks)
            # (not locked before only if another update moved it into the past meanwhile: the
            # organizer's lock then comes after the item's, against the lock order; a revival
            # racing it may deadlock, which PostgreSQL breaks and contention_guard answers 503)
            _check_item_limit(item.organizer, lock=not organizer_locked)
        renamed = merged["name"] != item.name
        # A new place is news to the bookers as new times are: their calendars hold the old one
        # (not once the item has ended: a record corrected).
        moved_place = ((merged["location"] or "").strip() != (item.location or "").strip()
                       and merged["end_time"] > timezone.now())
        for field, value in merged.items():
            setattr(item, field, value)
        item.category = item.category or None
        item.tags = list(item.tags or [])
        item.save()
        if wanted is not None:
            _replace_tiers(item=item, current=current, wanted=wanted)
        if times_changed or moved_place:
            bookings_follow_item(item=item, times=times_changed, place=moved_place)
        # Booking documents carry the item's name and times: re-project them when those change.
        _announce_item_change(item, with_bookings=renamed or times_changed)
    return item


def item_delete(*, actor, item_id, request=None) -> BookableItem:
    """Soft delete: the item leaves the API; bookings of an item that has not started yet are
    cancelled with notifications; bookings of past items stay as history (revenue). A system
    log entry says who deleted it and how many bookings that cancelled."""
    with contention_guard(), transaction.atomic():
        item = _lock_item_for_change(actor=actor, item_id=item_id)
        item.deleted_at = timezone.now()
        item.save(update_fields=["deleted_at", "updated_at"])
        cancelled = 0
        if item.start_time > item.deleted_at:
            cancelled = booking_cancel_for_item(item=item)
        _announce_item_change(item)
        system_log_create(event_type="ITEM", severity=Severity.WARNING, message="Item deleted", user_id=item.organizer_id,
                          request=request, reported_by=actor,
                          additional_data={"itemId": item.pk, "name": item.name, "by": actor.pk, "cancelledBookings": cancelled})
    return item
