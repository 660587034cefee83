"""Reads for reporting: the revenue report (one grouped query) and the recommender's inputs.

Built on catalog/reservations models: catalog's `item_queryset()` gives the annotated items the
API serializes; the recommendation-specific filters (public, upcoming, seats left, not booked by
the caller) live here because no catalog selector expresses them.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import BigIntegerField, Count, F, Q, QuerySet, Sum
from django.db.models.functions import Cast, Lower, Round, Substr, TruncDate
from django.utils import timezone

from bookings_project.datetimes import ensure_storable, local_day_start
from catalog.models import BookableItem
from catalog.selectors import item_queryset
from reservations.models import Booking, BookingStatus

from .recommendations import ItemFeatures, recommend

# Bookings that earned money (contract §5): cancelled and pending ones do not count.
REVENUE_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.COMPLETED)
# Bookings that make an item "already booked" for recommendations (a cancelled one does not).
HELD_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.COMPLETED)
# Bounded work per recommendation request: the caller's last PROFILE_CAP bookings; as
# candidates, the next MATCH_CAP upcoming items sharing an organizer, category or location with
# them plus the next CANDIDATE_CAP upcoming items of any kind (so a good match is scored however
# many unrelated items start sooner); the first TEXT_CHARS characters of each description.
PROFILE_CAP = 50
MATCH_CAP = 500
CANDIDATE_CAP = 500
TEXT_CHARS = 1_000
ZERO = Decimal("0.00")
# Sums of money in whole cents, as integers: exact on every database (SQLite would add the
# decimals as floating point and lose cents on very large totals).
CENTS_SUM = Sum(Cast(Round(F("price_paid") * 100), BigIntegerField()))


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


def _money(cents) -> Decimal:
    return (Decimal(cents or 0) / 100).quantize(Decimal("0.01"))


def revenue_by_item(*, filters: RevenueFilters) -> RevenueReport:
    """One grouped query; details by revenue descending, ties by item id."""
    rows = (
        revenue_bookings(filters=filters)
        .values("item_id")
        .annotate(item_name=F("item__name"), revenue=CENTS_SUM,
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
        .annotate(revenue=CENTS_SUM, bookings=Count("id"))
        .order_by("day")
    )
    return [DayRevenue(r["day"], _money(r["revenue"]), r["bookings"]) for r in rows]


# --- recommendations --------------------------------------------------------------------------

_FEATURE_FIELDS = ("id", "name", "organizer_id", "category", "tags", "location", "start_time", "sold")


def _feature_rows(queryset, *, cap: int, prefix: str = "") -> list[ItemFeatures]:
    """ItemFeatures of the first `cap` items a (sorted) queryset reaches through `prefix`, their
    descriptions truncated to TEXT_CHARS."""
    rows = queryset.annotate(text_head=Substr(f"{prefix}description", 1, TEXT_CHARS)).values(
        *(f"{prefix}{name}" for name in _FEATURE_FIELDS), "text_head")[:cap]
    return [ItemFeatures(
        id=row[f"{prefix}id"], name=row[f"{prefix}name"], description=row["text_head"] or "",
        organizer_id=row[f"{prefix}organizer_id"], category=row[f"{prefix}category"],
        tags=tuple(str(t) for t in row[f"{prefix}tags"]) if isinstance(row[f"{prefix}tags"], list) else (),
        location=row[f"{prefix}location"], start_time=row[f"{prefix}start_time"], popularity=row[f"{prefix}sold"],
    ) for row in rows]


def recommendation_history(*, user, cap: int = PROFILE_CAP) -> list[ItemFeatures]:
    """The items of the user's last `cap` CONFIRMED/COMPLETED bookings, newest booking first
    (deleted items included: they still say what the user likes)."""
    bookings = Booking.objects.filter(user=user, status__in=REVENUE_STATUSES).order_by("-booking_date", "-id")
    return _feature_rows(bookings, cap=cap, prefix="item__")


def recommendation_candidates_queryset(*, user, now: datetime) -> QuerySet[BookableItem]:
    """Upcoming, public, live items with a free seat, not organized by the user and not
    already booked by them (any booking that is not cancelled)."""
    held = Booking.objects.filter(user=user, status__in=HELD_STATUSES).values("item_id")
    return (BookableItem.objects
            .filter(deleted_at__isnull=True, is_private=False, start_time__gt=now, sold__lt=F("capacity"))
            .exclude(Q(organizer_id=user.pk) | Q(pk__in=held)))


def recommendation_candidates(*, user, now: datetime, history: list[ItemFeatures] = (), popular: bool = False,
                              cap: int = CANDIDATE_CAP) -> list[ItemFeatures]:
    """The next `cap` candidates by start time, or (popular=True, for cold start) the `cap`
    most-booked ones; with a `history`, first the next MATCH_CAP sharing an organizer, category
    or location with it (case-insensitively, as the scores compare them)."""
    base = recommendation_candidates_queryset(user=user, now=now)
    order = ("-sold", "start_time", "id") if popular else ("start_time", "id")
    found = _feature_rows(base.order_by(*order), cap=cap)
    if history:
        categories = _match_keys(h.category for h in history)
        locations = _match_keys(h.location for h in history)
        matching = (base.annotate(category_key=Lower("category"), location_key=Lower("location"))
                    .filter(Q(organizer_id__in={h.organizer_id for h in history})
                            | Q(category__in=categories) | Q(category_key__in=categories)
                            | Q(location__in=locations) | Q(location_key__in=locations))
                    .order_by("start_time", "id"))
        seen = {item.id for item in found}
        found += [item for item in _feature_rows(matching, cap=MATCH_CAP) if item.id not in seen]
    return found


def _match_keys(values) -> set[str]:
    """The texts a candidate's category or location may equal, as stored or as the database's
    lower() gives it, to share the profile's value as the scores see it (casefolded, spaces
    collapsed): each value as it is, lower-cased and casefolded (which differ: "ß" casefolds to
    "ss"; PostgreSQL's lower() may differ from Python's, so an equal stored text is matched as
    it is)."""
    keys = set()
    for value in filter(None, values):
        collapsed = " ".join(value.split())
        keys |= {value, value.lower(), value.casefold(), collapsed.lower(), collapsed.casefold()}
    return keys


def recommended_items(*, user, limit: int, now: datetime | None = None) -> list[BookableItem]:
    """Annotated items (catalog's `item_queryset`) in recommendation order, each with `reason`.
    A fixed number of queries: history, the next candidates, the matching candidates (none at
    cold start), the chosen items, their tiers."""
    now = now or timezone.now()
    history = recommendation_history(user=user)
    candidates = recommendation_candidates(user=user, now=now, history=history, popular=not history,
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
