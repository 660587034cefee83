"""Reads on items. Visibility lives here: private items exist only for their organizer and ADMINs;
deleted items exist for nobody."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import DecimalField, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from bookings_project.datetimes import overlapping
from bookings_project.db import pk_in_range, select_instances

from .exceptions import ItemNotFound
from .models import BookableItem, PriceTier


@dataclass(frozen=True)
class ItemFilters:
    organizer_id: int | None = None
    only_mine: bool = False
    start_from: datetime | None = None
    start_to: datetime | None = None
    location: str | None = None
    category: str | None = None
    q: str | None = None


def item_queryset() -> QuerySet[BookableItem]:
    """Live items with `current_price` and `available_capacity` computed in SQL and tiers
    prefetched in order: a list costs the same few queries whatever its length."""
    first_open = PriceTier.objects.filter(item=OuterRef("pk"), sold__lt=F("max_capacity")).order_by("position")
    last_tier = PriceTier.objects.filter(item=OuterRef("pk")).order_by("-position")
    money = DecimalField(max_digits=10, decimal_places=2)
    return (
        BookableItem.objects.filter(deleted_at__isnull=True)
        .select_related("organizer")
        .prefetch_related(Prefetch("tiers", queryset=PriceTier.objects.order_by("position")))
        .annotate(
            # The first listed tier with a free seat; a sold-out item shows its last tier's price.
            current_price=Coalesce(
                Subquery(first_open.values("price")[:1]),
                Subquery(last_tier.values("price")[:1]),
                Value(Decimal("0.00")),
                output_field=money,
            ),
            available_capacity=F("capacity") - F("sold"),
        )
    )


def visible_to(actor) -> Q:
    if actor is None or not actor.is_authenticated:
        return Q(is_private=False)
    if actor.is_admin:
        return Q()
    return Q(is_private=False) | Q(organizer_id=actor.pk)


def item_list(*, actor, filters: ItemFilters = ItemFilters()) -> QuerySet[BookableItem]:
    qs = item_queryset().filter(visible_to(actor))
    if filters.only_mine:
        qs = qs.filter(organizer_id=actor.pk)
    if filters.organizer_id is not None:
        qs = qs.filter(organizer_id=filters.organizer_id)
    qs = qs.filter(overlapping(filters.start_from, filters.start_to))  # from/to: the window [from, to)
    if filters.location:
        qs = qs.filter(location__icontains=filters.location)
    if filters.category:
        qs = qs.filter(category__iexact=filters.category)
    for word in dict.fromkeys((filters.q or "").split()):  # every word, in the name or the description
        qs = qs.filter(Q(name__icontains=word) | Q(description__icontains=word))
    return qs.order_by("start_time", "id")


def item_list_scope(*, actor, filters: ItemFilters) -> tuple[str, object]:
    """(scope, actor to list as): callers who see exactly the public items share the scope
    "public" and are listed as anonymous; anyone who may see private items (an ADMIN, or the
    organizer of a live private item) or asks for their own items lists as themselves."""
    if actor is None or not actor.is_authenticated:
        return "public", None
    if actor.is_admin:
        return "admin", actor
    if filters.only_mine or _owns_live_private_item(actor):
        return f"user:{actor.pk}", actor
    return "public", None


def _owns_live_private_item(actor) -> bool:
    """Asked on every list request, so one short statement, not an ORM query build (make bench)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {BookableItem._meta.db_table} "
                       "WHERE organizer_id = %s AND is_private = %s AND deleted_at IS NULL LIMIT 1",
                       [actor.pk, True])
        return cursor.fetchone() is not None


def item_get_visible(*, actor, item_id) -> BookableItem:
    """The annotated item, or 404 when it does not exist, is deleted, or the actor may not see it."""
    item = item_queryset().filter(visible_to(actor)).filter(pk=item_id).first()
    if item is None:
        raise ItemNotFound()
    return item


def item_visible(*, actor, item: BookableItem) -> bool:
    """`visible_to` for one item already read (catalog/tests/test_selectors.py pins that they agree)."""
    return not item.is_private or item_can_manage(actor=actor, item=item)


def item_get_for_booking(*, actor, item_id) -> tuple[BookableItem, list[PriceTier]]:
    """The item (plain columns, no annotations) and its tiers in order, as a booking needs them;
    404 like item_get_visible. Two short statements: on the hot booking path the ORM's query
    building costs several times what PostgreSQL spends answering (make bench)."""
    if not pk_in_range(BookableItem, item_id):
        raise ItemNotFound()
    found = select_instances(BookableItem, "WHERE id = %s AND deleted_at IS NULL", [item_id])
    if not found or not item_visible(actor=actor, item=found[0]):
        raise ItemNotFound()
    return found[0], select_instances(PriceTier, "WHERE item_id = %s ORDER BY position", [item_id])


def item_can_manage(*, actor, item: BookableItem) -> bool:
    return bool(actor and actor.is_authenticated and (actor.is_admin or item.organizer_id == actor.pk))
