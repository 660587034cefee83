import re
from collections.abc import Mapping

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsOrganizerOrAdmin
from bookings_project.errors import ValidationFailed
from bookings_project.openapi import error_responses
from bookings_project.pagination import ARRAY_PAGING, array_response
from bookings_project.validation import no_body_expected, valid_data

from .. import selectors, services
from ..permissions import CanBook
from .serializers import (
    BookingRequestSerializer,
    BookingResponseSerializer,
    BookingStatusUpdateSerializer,
    ConflictCheckResponseSerializer,
    ConflictQuerySerializer,
    ItemBookingsQuerySerializer,
    MyBookingsQuerySerializer,
)


# One bound serializer for every response, as DRF's ListSerializer reuses its child:
# to_representation keeps no state, and building a serializer per response deep-copies its
# declared fields (make bench: a tenth of a booking's web CPU).
_BOOKING_SERIALIZER = BookingResponseSerializer()


def booking_json(booking) -> dict:
    return _BOOKING_SERIALIZER.to_representation(booking)


def bookings_json(bookings) -> list[dict]:
    return [booking_json(booking) for booking in bookings]


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Optional, 1-64 visible ASCII characters, unique per request the client means once. A retry "
                "with the same key returns the booking the key already made (201, `Idempotent-Replayed: "
                "true`), as it is now — check its `status`: it may have been cancelled since — instead of "
                "booking again; the same key for another item or tier is a 409. A refused request (400, "
                "409) binds no key.")
REPLAYED = OpenApiParameter(
    "Idempotent-Replayed", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[201], enum=["true"],
    description="Present (`true`) when the booking was made by an earlier request with the same Idempotency-Key.")
_KEY = re.compile(r"[!-~]{1,64}")


def idempotency_key(request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise ValidationFailed("Invalid Idempotency-Key header", fields={
            "Idempotency-Key": ["Use 1-64 visible ASCII characters (no spaces)"]})
    return key


class ItemBookingsView(APIView):
    """POST: book the item (USER, EVENT_ORGANIZER, ADMIN). GET: its bookings (ADMIN or its organizer)."""

    def get_permissions(self):
        return [CanBook()] if self.request.method == "POST" else [IsOrganizerOrAdmin()]

    @extend_schema(summary="Book an item (USER, EVENT_ORGANIZER, ADMIN)",
                   description="Books one seat for the caller. Without `priceTier` the first listed tier with a free "
                               "seat is taken, at its price. Refusals: not visible 404; started, full (\"Capacity "
                               "exceeded\") or tier sold out 400; overlapping one of the caller's CONFIRMED bookings "
                               "409 (`booking_time_conflict`), as is holding MAX_ACTIVE_BOOKINGS_PER_USER active "
                               "bookings of items not ended yet (`booking_limit_reached`). Send an `Idempotency-Key` "
                               "to make retries safe.",
                   tags=["bookings"], request=BookingRequestSerializer, parameters=[IDEMPOTENCY_KEY, REPLAYED],
                   responses={201: BookingResponseSerializer, **error_responses(400, 401, 403, 404, 409, e503=(
                       "The item is busy or the database unavailable: nothing was saved, retry after "
                       "Retry-After. Or the connection was lost while saving: the message says the booking "
                       "may or may not have been made; retry with the same Idempotency-Key, or check "
                       "GET /api/v1/bookings/me before retrying"))})
    def post(self, request, item_id):
        # No body is {}; any body must be an object ([] or false is a 400, not "no tier asked for").
        body = {} if isinstance(request.data, Mapping) and not request.data else request.data
        data = valid_data(BookingRequestSerializer, body)
        booking, created = services.booking_create_once(
            user=request.user, item_id=item_id, tier_name=data.get("tier_name"), request_key=idempotency_key(request))
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return Response(booking_json(booking), status=status.HTTP_201_CREATED, headers=headers)

    @extend_schema(summary="Bookings of an item (its organizer, ADMIN)",
                   description="Oldest first (the order seats were taken), any status unless `status` is given. A "
                               "plain array; `page`/`pageSize` opt in to paging.",
                   tags=["bookings"], parameters=[ItemBookingsQuerySerializer, *ARRAY_PAGING],
                   responses={200: BookingResponseSerializer(many=True), **error_responses(400, 401, 403, 404)})
    def get(self, request, item_id):
        filters = _booking_filters(request, ItemBookingsQuerySerializer)
        return array_response(request, selectors.booking_list_for_item(actor=request.user, item_id=item_id,
                                                                       filters=filters), bookings_json)


class MyBookingsView(APIView):
    permission_classes = (IsAuthenticated,)

    @extend_schema(summary="The caller's bookings",
                   description="Newest first, any status unless `status` is given; `from`/`to` select bookings whose "
                               "item overlaps [from, to) (`?from=<now>&status=CONFIRMED`: what is still to come). A "
                               "plain array; `page`/`pageSize` opt in to paging.",
                   tags=["bookings"], parameters=[MyBookingsQuerySerializer, *ARRAY_PAGING],
                   responses={200: BookingResponseSerializer(many=True), **error_responses(400, 401)})
    def get(self, request):
        filters = _booking_filters(request, MyBookingsQuerySerializer)
        return array_response(request, selectors.booking_list_for_user(user=request.user, filters=filters),
                              bookings_json)


def _booking_filters(request, serializer_class) -> selectors.BookingFilters:
    if not request.query_params:
        return selectors.BookingFilters()
    params = valid_data(serializer_class, request.query_params)
    return selectors.BookingFilters(**{**params, "statuses": tuple(params.get("statuses", ()))})


class BookingCancelView(APIView):
    permission_classes = (IsAuthenticated,)

    @extend_schema(summary="Cancel a booking (its owner, ADMIN)",
                   description="Frees the seat and emails the booker. The owner may cancel until the item starts "
                               "(then 409); the item's organizer gets 403 (use the status route); anyone else 404.",
                   tags=["bookings"], request=None,
                   responses={200: BookingResponseSerializer, **error_responses(400, 401, 403, 404, 409)})
    def put(self, request, booking_id):
        no_body_expected(request)
        booking = services.booking_cancel(actor=request.user, booking_id=booking_id)
        return Response(booking_json(booking))


class BookingStatusView(APIView):
    permission_classes = (IsOrganizerOrAdmin,)

    @extend_schema(summary="Change a booking's status (the item's organizer, ADMIN)",
                   description="Allowed moves: PENDING → CONFIRMED or CANCELLED; CONFIRMED → COMPLETED (once the item "
                               "has started) or CANCELLED. Any other move is a 409.",
                   tags=["bookings"], request=BookingStatusUpdateSerializer,
                   responses={200: BookingResponseSerializer, **error_responses(400, 401, 403, 404, 409)})
    def put(self, request, booking_id):
        data = valid_data(BookingStatusUpdateSerializer, request.data)
        booking = services.booking_set_status(actor=request.user, booking_id=booking_id, status=data["status"])
        return Response(booking_json(booking))


class MyConflictsView(APIView):
    permission_classes = (IsAuthenticated,)

    @extend_schema(summary="Check the caller's time conflicts",
                   description="The caller's CONFIRMED bookings overlapping [startTime, endTime) (half-open: "
                               "back-to-back is no conflict).",
                   tags=["availability"], parameters=[ConflictQuerySerializer],
                   responses={200: ConflictCheckResponseSerializer, **error_responses(400, 401)})
    def get(self, request):
        window = valid_data(ConflictQuerySerializer, request.query_params)
        conflicts = list(selectors.booking_conflicts(user=request.user, **window))
        return Response(ConflictCheckResponseSerializer(
            {"userId": request.user.pk, "hasConflict": bool(conflicts), "conflictingBookings": conflicts}
        ).data)
