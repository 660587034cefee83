"""Reads for reporting: the revenue report (one grouped query) and the recommender's inputs.

Built on catalog/reservations models: catalog's `item_queryset()` gives the annotated items the
API serializes; the recommendation-specific filters (public, upcoming, seats left, not booked by
the caller) live here because no catalog selector expresses them.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, DecimalField, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from bookings_project.datetimes import ensure_storable
from catalog.models import BookableItem
from catalog.selectors import item_queryset
from reservations.models import Booking, BookingStatus

from .recommendations import ItemFeatures, recommend

# Bookings that earned money (contract §5): cancelled and pending ones do not count.
REVENUE_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.COMPLETED)
# Bookings that make an item "already booked" for recommendations (a cancelled one does not).
HELD_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.COMPLETED)
# Bounded work per recommendation request: the caller's last PROFILE_CAP bookings and the next
# CANDIDATE_CAP upcoming items by start time.
PROFILE_CAP = 50
CANDIDATE_CAP = 500
# Sums can outgrow a single price's 10 digits; on SQLite the sum is quantized back to cents.
MONEY_SUM = DecimalField(max_digits=20, decimal_places=2)
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class RevenueFilters:
    start_date: date | None = None
    end_date: date | None = None
    item_id: int | None = None


@dataclass(frozen=True)
class ItemRevenue:
    item_id: int
    item_name: str
    revenue: Decimal
    bookings: int


@dataclass(frozen=True)
class DayRevenue:
    day: date
    revenue: Decimal
    bookings: int


@dataclass(frozen=True)
class RevenueReport:
    total: Decimal
    bookings: int
    details: list[ItemRevenue]


def local_day_start(day: date) -> datetime:
    """Midnight of `day` in TIME_ZONE, as an aware datetime."""
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def booking_day_window(*, start_date: date | None = None,
                       end_date: date | None = None) -> tuple[datetime | None, datetime | None]:
    """[from, to) of booking datetimes for inclusive local (TIME_ZONE) days; None = unbounded.
    The midnight starting 0001-01-01 east of UTC precedes every storable datetime, and nothing
    follows 9999-12-31: neither bounds anything (rather than overflowing into a 500). Raises
    ValueError if any other bound cannot be stored."""
    lower = upper = None
    if start_date is not None:
        try:
            lower = ensure_storable(local_day_start(start_date))
        except ValueError:
            if start_date != date.min:
                raise
    if end_date is not None and end_date < date.max:
        upper = ensure_storable(local_day_start(end_date + timedelta(days=1)))
    return lower, upper


def revenue_bookings(*, filters: RevenueFilters) -> QuerySet[Booking]:
    """Revenue-earning bookings; dates are inclusive local (TIME_ZONE) days of `booking_date`.
    Deleted items are not excluded: their revenue history stays."""
    qs = Booking.objects.filter(status__in=REVENUE_STATUSES)
    lower, upper = booking_day_window(start_date=filters.start_date, end_date=filters.end_date)
    if lower is not None:
        qs = qs.filter(booking_date__gte=lower)
    if upper is not None:
        qs = qs.filter(booking_date__lt=upper)
    if filters.item_id is not None:
        qs = qs.filter(item_id=filters.item_id)
    return qs


def _money(value) -> Decimal:
    return (value or ZERO).quantize(Decimal("0.01"))


def revenue_by_item(*, filters: RevenueFilters) -> RevenueReport:
    """One grouped query; details by revenue descending, ties by item id."""
    rows = (
        revenue_bookings(filters=filters)
        .values("item_id")
        .annotate(item_name=F("item__name"), revenue=Sum("price_paid", output_field=MONEY_SUM),
                  bookings=Count("id"))
        .order_by("-revenue", "item_id")
    )
    details = [ItemRevenue(r["item_id"], r["item_name"], _money(r["revenue"]), r["bookings"]) for r in rows]
    return RevenueReport(total=sum((d.revenue for d in details), ZERO),
                         bookings=sum(d.bookings for d in details), details=details)


def revenue_by_day(*, filters: RevenueFilters) -> list[DayRevenue]:
    """One grouped query by local (TIME_ZONE) booking day, oldest first; days without revenue
    are absent."""
    rows = (
        revenue_bookings(filters=filters)
        .annotate(day=TruncDate("booking_date", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(revenue=Sum("price_paid", output_field=MONEY_SUM), bookings=Count("id"))
        .order_by("day")
    )
    return [DayRevenue(r["day"], _money(r["revenue"]), r["bookings"]) for r in rows]


# --- recommendations --------------------------------------------------------------------------

_FEATURE_FIELDS = ("id", "name", "description", "organizer_id", "category", "tags", "location", "start_time",
                   "sold")


def _features(row: dict, prefix: str = "") -> ItemFeatures:
    tags = row[f"{prefix}tags"]
    return ItemFeatures(
        id=row[f"{prefix}id"], name=row[f"{prefix}name"], description=row[f"{prefix}description"],
        organizer_id=row[f"{prefix}organizer_id"], category=row[f"{prefix}category"],
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        location=row[f"{prefix}location"], start_time=row[f"{prefix}start_time"], popularity=row[f"{prefix}sold"],
    )


def recommendation_history(*, user, cap: int = PROFILE_CAP) -> list[ItemFeatures]:
    """The items of the user's last `cap` CONFIRMED/COMPLETED bookings, newest booking first
    (deleted items included: they still say what the user likes)."""
    rows = (Booking.objects.filter(user=user, status__in=REVENUE_STATUSES)
            .order_by("-booking_date", "-id")
            .values(*(f"item__{name}" for name in _FEATURE_FIELDS))[:cap])
    return [_features(row, prefix="item__") for row in rows]


def recommendation_candidates_queryset(*, user, now: datetime) -> QuerySet[BookableItem]:
    """Upcoming, public, live items with a free seat, not organized by the user and not
    already booked by them (any booking that is not cancelled)."""
    held = Booking.objects.filter(user=user, status__in=HELD_STATUSES).values("item_id")
    return (BookableItem.objects
            .filter(deleted_at__isnull=True, is_private=False, start_time__gt=now, sold__lt=F("capacity"))
            .exclude(Q(organizer_id=user.pk) | Q(pk__in=held)))


def recommendation_candidates(*, user, now: datetime, popular: bool = False,
                              cap: int = CANDIDATE_CAP) -> list[ItemFeatures]:
    """The next `cap` candidates by start time, or (popular=True, for cold start) the `cap`
    most-booked ones."""
    order = ("-sold", "start_time", "id") if popular else ("start_time", "id")
    rows = recommendation_candidates_queryset(user=user, now=now).order_by(*order).values(*_FEATURE_FIELDS)[:cap]
    return [_features(row) for row in rows]


def recommended_items(*, user, limit: int, now: datetime | None = None) -> list[BookableItem]:
    """Annotated items (catalog's `item_queryset`) in recommendation order, each with `reason`.
    A fixed number of queries: history, candidates, items, their tiers."""
    now = now or timezone.now()
    history = recommendation_history(user=user)
    candidates = recommendation_candidates(user=user, now=now, popular=not history,
                                           cap=limit if not history else CANDIDATE_CAP)
    ranked = recommend(history, candidates, limit=limit)
    if not ranked:
        return []
    items = item_queryset().in_bulk([r.item_id for r in ranked])
    result = []
    for recommendation in ranked:
        item = items.get(recommendation.item_id)
        if item is not None:  # deleted since the candidate query: leave it out
            item.reason, item.score = recommendation.reason, recommendation.score
            result.append(item)
    return result
