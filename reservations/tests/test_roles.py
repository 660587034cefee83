"""Who may call what: every item and booking endpoint × anonymous, USER, the owning organizer,
another organizer, ADMIN, IT_OPERATOR, accounts holding IT_OPERATOR besides USER or
EVENT_ORGANIZER (not the owner), and ADMIN tokens revoked since they were issued (the account
deactivated, or its password changed)."""

import pytest

from bookings_project.testing import REVOKED_CALLERS
from catalog.models import BookableItem
from catalog.tests.factories import item_payload, make_item
from reservations.models import Booking, BookingStatus
from reservations.services import booking_create
from reservations.tests.factories import once_started

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "user", "owner", "other_organizer", "admin",
         "operator", "user_operator", "organizer_operator", "deactivated", "stale_password"]

# endpoint -> expected status per caller, in ROLES order ({item}: a public item, {private}: a
# private one, both of `owner`; {booking}: a booking of the public item made by `booker`).
# A revoked token is a 401 everywhere, public reads included: a token that is sent is checked.
MATRIX = {
    "list items": ("get", "/api/v1/items", None, [200, 200, 200, 200, 200, 200, 200, 200, 401, 401]),
    "list my items": ("get", "/api/v1/items?onlyMyItems=true", None,
                      [401, 200, 200, 200, 200, 200, 200, 200, 401, 401]),
    "create item": ("post", "/api/v1/items", "item", [401, 403, 201, 201, 201, 403, 403, 201, 401, 401]),
    "get item": ("get", "/api/v1/items/{item}", None, [200, 200, 200, 200, 200, 200, 200, 200, 401, 401]),
    "update item": ("put", "/api/v1/items/{item}", {"name": "Renamed"},
                    [401, 403, 200, 403, 200, 403, 403, 403, 401, 401]),
    "delete item": ("delete", "/api/v1/items/{item}", None, [401, 403, 204, 403, 204, 403, 403, 403, 401, 401]),
    "availability": ("get", "/api/v1/items/{item}/availability", None,
                     [200, 200, 200, 200, 200, 200, 200, 200, 401, 401]),
    # An IT_OPERATOR-only account cannot book (an operations account); with USER or
    # EVENT_ORGANIZER besides, it can.
    "book item": ("post", "/api/v1/bookings/items/{item}", {}, [401, 201, 201, 201, 201, 403, 201, 201, 401, 401]),
    "item bookings": ("get", "/api/v1/bookings/items/{item}", None, [401, 403, 200, 403, 200, 403, 403, 403, 401, 401]),
    "my bookings": ("get", "/api/v1/bookings/me", None, [401, 200, 200, 200, 200, 200, 200, 200, 401, 401]),
    # A booking is 404 to those who cannot see it (anyone but its owner, the item's organizer and
    # ADMINs); 403 to the organizer, who sees it but may not cancel it. /status is for organizers
    # and ADMINs: a caller without either role is refused by role (403) before any lookup.
    "cancel booking": ("put", "/api/v1/bookings/{booking}/cancel", None,
                       [401, 404, 403, 404, 200, 404, 404, 404, 401, 401]),
    "booking status": ("put", "/api/v1/bookings/{booking}/status", {"status": "CANCELLED"},
                       [401, 403, 200, 404, 200, 403, 403, 404, 401, 401]),
    "my conflicts": ("get", "/api/v1/users/me/conflicts?startTime=2031-09-15T09:00:00"
                            "&endTime=2031-09-15T11:00:00", None, [401, 200, 200, 200, 200, 200, 200, 200, 401, 401]),
    # A private item is 404 (as if it did not exist) to everyone but its organizer and ADMINs,
    # once the caller's role allows the action at all (else 403 before any lookup).
    "get private item": ("get", "/api/v1/items/{private}", None, [404, 404, 200, 404, 200, 404, 404, 404, 401, 401]),
    "private availability": ("get", "/api/v1/items/{private}/availability", None,
                             [404, 404, 200, 404, 200, 404, 404, 404, 401, 401]),
    "update private item": ("put", "/api/v1/items/{private}", {"name": "Renamed"},
                            [401, 403, 200, 404, 200, 403, 403, 404, 401, 401]),
    "delete private item": ("delete", "/api/v1/items/{private}", None,
                            [401, 403, 204, 404, 204, 403, 403, 404, 401, 401]),
    "book private item": ("post", "/api/v1/bookings/items/{private}", {},
                          [401, 404, 201, 404, 201, 403, 404, 404, 401, 401]),
    "private item bookings": ("get", "/api/v1/bookings/items/{private}", None,
                              [401, 403, 200, 404, 200, 403, 403, 404, 401, 401]),
}
CASES = [(name, role, expected[i]) for name, (*_, expected) in MATRIX.items() for i, role in enumerate(ROLES)]


@pytest.fixture
def caller_client(make_user, client_for, revoked_client_for, organizer, other_organizer, admin):
    """caller_client(role) -> the API client of `role` (ROLES)."""
    users = {"anonymous": lambda: None, "user": make_user, "owner": lambda: organizer,
             "other_organizer": lambda: other_organizer, "admin": lambda: admin,
             "operator": lambda: make_user(roles=["IT_OPERATOR"]),
             "user_operator": lambda: make_user(roles=["USER", "IT_OPERATOR"]),
             "organizer_operator": lambda: make_user(roles=["EVENT_ORGANIZER", "IT_OPERATOR"])}

    def build(role):
        return revoked_client_for(role) if role in REVOKED_CALLERS else client_for(users[role]())

    return build


@pytest.mark.parametrize(("endpoint", "role", "expected"), CASES)
def test_role_matrix(endpoint, role, expected, make_user, organizer, caller_client):
    item = make_item(organizer, capacity=5)
    private = make_item(organizer, capacity=5, is_private=True, start=item.end_time)
    booker = make_user()
    booking = booking_create(user=booker, item_id=item.pk)
    client = caller_client(role)
    method, path, body, _ = MATRIX[endpoint]
    body = item_payload() if body == "item" else body
    response = getattr(client, method)(
        path.format(item=item.pk, private=private.pk, booking=booking.pk), body, format="json")
    assert response.status_code == expected, response.content
    if expected >= 400:
        assert response.json()["status"] == expected
        # Nothing changed behind the refusal.
        live = BookableItem.objects.filter(deleted_at__isnull=True)
        assert sorted(live.values_list("name", flat=True)) == ["Item", "Item"]
        assert Booking.objects.get().status == BookingStatus.CONFIRMED


def test_booker_may_cancel_own_booking_but_not_set_its_status(make_user, client_for, organizer):
    item = make_item(organizer)
    booker = make_user()
    booking = booking_create(user=booker, item_id=item.pk)
    client = client_for(booker)
    assert client.put(f"/api/v1/bookings/{booking.pk}/status", {"status": "COMPLETED"},
                      format="json").status_code == 403
    assert client.put(f"/api/v1/bookings/{booking.pk}/cancel").json()["status"] == "CANCELLED"


def test_operator_only_account_cannot_book(make_user, client_for, organizer):
    item = make_item(organizer)
    operator = make_user(roles=["IT_OPERATOR"])
    assert client_for(operator).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").status_code == 403


def test_only_my_items_needs_a_token(client_for, organizer):
    make_item(organizer)
    assert client_for().get("/api/v1/items?onlyMyItems=true").status_code == 401
    assert client_for().get("/api/v1/items?onlyMyItems=false").status_code == 200


def test_an_organizer_who_booked_another_organizers_item_cannot_set_its_status(make_user, client_for, organizer):
    """The EVENT_ORGANIZER role opens /status only for the organizer's own items: owning the
    booking is not enough (else an organizer could mark their own booking COMPLETED or revive
    it at will)."""
    item = make_item(organizer)
    booker = make_user(roles=["EVENT_ORGANIZER"])
    booking = booking_create(user=booker, item_id=item.pk)
    refused = client_for(booker).put(f"/api/v1/bookings/{booking.pk}/status", {"status": "COMPLETED"}, format="json")
    assert refused.status_code == 403
    booking.refresh_from_db()
    assert booking.status == "CONFIRMED"
    # The item's own organizer still may (once the item has started).
    with once_started(item):
        allowed = client_for(organizer).put(f"/api/v1/bookings/{booking.pk}/status", {"status": "COMPLETED"},
                                            format="json")
    assert allowed.status_code == 200 and allowed.json()["status"] == "COMPLETED"


def test_a_finished_booking_is_404_not_409_to_those_who_may_not_see_it(make_user, client_for, organizer,
                                                                      other_organizer):
    """Visibility is checked before the status machine: a stranger learns nothing from a
    booking id, not even that it was cancelled. Its owner, who sees it, gets the 409."""
    item = make_item(organizer)
    booker = make_user()
    booking = booking_create(user=booker, item_id=item.pk)
    assert client_for(booker).put(f"/api/v1/bookings/{booking.pk}/cancel").status_code == 200

    assert client_for(make_user()).put(f"/api/v1/bookings/{booking.pk}/cancel").status_code == 404
    assert client_for(other_organizer).put(f"/api/v1/bookings/{booking.pk}/status", {"status": "CONFIRMED"},
                                           format="json").status_code == 404
    assert client_for(booker).put(f"/api/v1/bookings/{booking.pk}/cancel").status_code == 409
