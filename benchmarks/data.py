"""Data for the run, written through the ORM with bulk_create where that is safe: every seat
counter (`BookableItem.sold`, `PriceTier.sold`) is written equal to the active bookings it
counts, tiers filled in their listed order, and no user holds two overlapping CONFIRMED bookings
(list items never overlap in time), so the data is exactly what the services would have made.
"""

import random
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.db.models import Count, F, Q
from django.utils import timezone

PASSWORD = "bench-Password-1"
DESCRIPTION = ("An evening of live acoustic music in the old hall: two sets, a short interval, "
               "seats in the stalls and the balcony. Doors open thirty minutes before the start.")
CHUNK = 5000


def users_create(count: int, *, prefix: str, roles=("USER",)) -> list:
    from accounts.models import User

    password = make_password(PASSWORD)  # one hash for all: PBKDF2 per user would take minutes
    made = []
    for start in range(0, count, CHUNK):
        made += User.objects.bulk_create(
            User(username=f"{prefix}{i}", email=f"{prefix}{i}@bench.local", password=password,
                 roles=sorted(roles), is_active=True)
            for i in range(start, min(count, start + CHUNK)))
    return made


def access_tokens(users) -> list[str]:
    """Bearer tokens exactly as login issues them (with the password fingerprint claim)."""
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.tokens import PASSWORD_CLAIM, password_fingerprint

    tokens = []
    for user in users:
        token = AccessToken.for_user(user)
        token[PASSWORD_CLAIM] = password_fingerprint(user)
        tokens.append(str(token))
    return tokens


def _tiers(item, capacities: list[int], active: int) -> list:
    """Tiers of `item`, sold in order, holding `active` seats between them."""
    from catalog.models import PriceTier

    tiers, left = [], active
    for position, capacity in enumerate(capacities):
        sold = min(left, capacity)
        left -= sold
        tiers.append(PriceTier(item=item, position=position, name=f"Tier {position + 1}",
                               price=Decimal("25.00") + 10 * position, max_capacity=capacity, sold=sold))
    return tiers


def items_create(count: int, *, organizers, start, step: timedelta, capacities: list[int],
                 active_per_item: int = 0, name: str = "Concert") -> list:
    """`count` public items starting at start, start+step, …, each 1 hour long."""
    from catalog.models import BookableItem, PriceTier

    made = []
    for chunk_start in range(0, count, CHUNK):
        items = BookableItem.objects.bulk_create(
            BookableItem(organizer=organizers[i % len(organizers)], name=f"{name} {i}", description=DESCRIPTION,
                         start_time=start + i * step, end_time=start + i * step + timedelta(hours=1),
                         location=f"Hall {i % 17}", capacity=sum(capacities), category=("music", "talks")[i % 2],
                         tags=["live", f"tag{i % 5}"], sold=active_per_item)
            for i in range(chunk_start, min(count, chunk_start + CHUNK)))
        PriceTier.objects.bulk_create(
            [tier for item in items for tier in _tiers(item, capacities, active_per_item)], batch_size=CHUNK)
        made += items
    return made


def bookings_create(items, users, *, per_item: int, cancelled_every: int = 10) -> int:
    """`per_item` bookings on every item by distinct users; every `cancelled_every`-th one is
    CANCELLED (history: it holds no seat). Active ones fill the item's tiers in order."""
    from catalog.models import PriceTier
    from reservations.models import Booking, BookingStatus

    tiers_by_item: dict[int, list] = {}
    for tier in PriceTier.objects.filter(item__in=items).order_by("item_id", "position"):
        tiers_by_item.setdefault(tier.item_id, []).append(tier)
    rows, total = [], 0
    for j, item in enumerate(items):
        tiers = tiers_by_item[item.pk]
        seats = [t for t in tiers for _ in range(t.max_capacity)]  # seat k belongs to this tier
        active = 0
        for k in range(per_item):
            user = users[(j * per_item + k) % len(users)]
            cancelled = (k + 1) % cancelled_every == 0
            tier = seats[active] if not cancelled else tiers[0]
            active += 0 if cancelled else 1
            rows.append(Booking(user=user, item=item, tier=tier, tier_name=tier.name, price_paid=tier.price,
                                status=BookingStatus.CANCELLED if cancelled else BookingStatus.CONFIRMED,
                                start_time=item.start_time, end_time=item.end_time))
        if len(rows) >= CHUNK:
            total += len(Booking.objects.bulk_create(rows))
            rows = []
    total += len(Booking.objects.bulk_create(rows)) if rows else 0
    return total


def active_per_item(per_item: int, cancelled_every: int = 10) -> int:
    return sum(1 for k in range(per_item) if (k + 1) % cancelled_every)


def seat_audit(item_ids=None) -> dict:
    """Oversell check from the database: counters equal actual active bookings and never
    exceed capacity, per item and per tier; one booking per user on each item."""
    from catalog.models import BookableItem, PriceTier
    from reservations.models import ACTIVE_STATUSES, Booking

    active = Q(bookings__status__in=ACTIVE_STATUSES)
    items = BookableItem.objects.all() if item_ids is None else BookableItem.objects.filter(pk__in=item_ids)
    tiers = PriceTier.objects.filter(item__in=items)
    items = items.annotate(actual=Count("bookings", filter=active))
    tiers = tiers.annotate(actual=Count("bookings", filter=active))
    over_items = items.filter(actual__gt=F("capacity")).count()
    drift_items = items.exclude(sold=F("actual")).count()
    over_tiers = tiers.filter(actual__gt=F("max_capacity")).count()
    drift_tiers = tiers.exclude(sold=F("actual")).count()
    bookings = Booking.objects.filter(item__in=items.values("pk"), status__in=ACTIVE_STATUSES)
    doubles = bookings.values("user_id", "item_id").annotate(n=Count("id")).filter(n__gt=1).count()
    return {"items": items.count(), "oversold_items": over_items, "counter_drift_items": drift_items,
            "oversold_tiers": over_tiers, "counter_drift_tiers": drift_tiers, "double_bookings": doubles,
            "ok": not (over_items or drift_items or over_tiers or drift_tiers or doubles)}


# --- reconciliation data ------------------------------------------------------------------


def documents_build(after_pk: int = 0, batch: int = 1000) -> int:
    """Documents for every live item with pk > after_pk, from the same canonical bodies
    reconciliation compares against (ops.documents.relational_bodies)."""
    from catalog.selectors import item_queryset
    from ops.documents import relational_bodies
    from ops.models import Document
    from ops.routers import DOCUMENTS_DB

    now, made, last = timezone.now(), 0, after_pk
    while True:
        rows = list(item_queryset().filter(pk__gt=last).order_by("pk")[:batch])
        if not rows:
            return made
        last = rows[-1].pk
        bodies = relational_bodies("item", rows)
        Document.objects.using(DOCUMENTS_DB).bulk_create(
            Document(entity_type="item", entity_id=key, body=body, version=1, updated_at=now)
            for key, body in bodies.items())
        made += len(bodies)


def documents_tamper(fraction: float, *, seed: int) -> dict:
    """Drift `fraction` of the item documents: 60% a changed field, 20% missing, 20% orphans."""
    from ops.models import Document
    from ops.routers import DOCUMENTS_DB

    docs = Document.objects.using(DOCUMENTS_DB).filter(entity_type="item")
    ids = list(docs.values_list("entity_id", flat=True))
    rng = random.Random(seed)
    n = max(5, int(len(ids) * fraction))
    picked = rng.sample(ids, n)
    n_changed, n_missing = int(n * 0.6), int(n * 0.2)
    changed, missing = picked[:n_changed], picked[n_changed:n_changed + n_missing]
    n_orphans = n - n_changed - n_missing
    for doc in docs.filter(entity_id__in=changed):
        stale = {**doc.body, "capacity": doc.body["capacity"] + 1, "name": doc.body["name"] + " (stale)"}
        docs.filter(entity_id=doc.entity_id).update(body=stale)
    docs.filter(entity_id__in=missing).delete()
    now = timezone.now()
    Document.objects.using(DOCUMENTS_DB).bulk_create(
        Document(entity_type="item", entity_id=str(900_000_000 + seed * 100_000 + k),
                 body={"id": -1, "name": "orphan"}, version=1, updated_at=now) for k in range(n_orphans))
    return {"updated": n_changed, "created": n_missing, "deleted": n_orphans}
