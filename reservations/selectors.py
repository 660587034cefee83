from datetime import datetime

from django.db.models import QuerySet

from bookings_project.errors import Forbidden
from catalog.selectors import item_can_manage, item_get_visible

from .conflicts import overlap_q
from .models import Booking, BookingStatus


def booking_queryset() -> QuerySet[Booking]:
    return Booking.objects.select_related("user", "item", "tier")


def booking_list_for_user(*, user) -> QuerySet[Booking]:
    return booking_queryset().filter(user=user).order_by("-booking_date", "-id")


def booking_list_for_item(*, actor, item_id) -> QuerySet[Booking]:
    """GET /bookings/items/{id}: the item's bookings, for its organizer and ADMINs. An item the
    actor cannot see is a 404; one they see but do not manage, a 403."""
    item = item_get_visible(actor=actor, item_id=item_id)
    if not item_can_manage(actor=actor, item=item):
        raise Forbidden("Only an ADMIN or the item's organizer may list its bookings")
    return booking_queryset().filter(item=item).order_by("booking_date", "id")


def booking_visible(*, actor, booking: Booking) -> bool:
    """Its owner, the booked item's organizer and ADMINs see a booking; to anyone else it is a
    404, so booking ids reveal nothing (contract §8)."""
    return booking.user_id == actor.pk or item_can_manage(actor=actor, item=booking.item)


def booking_conflicts(*, user, start: datetime, end: datetime, exclude_id=None) -> QuerySet[Booking]:
    """The user's CONFIRMED bookings overlapping [start, end)."""
    qs = booking_queryset().filter(overlap_q(start, end), user=user, status=BookingStatus.CONFIRMED)
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    return qs.order_by("start_time", "id")
