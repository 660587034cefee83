"""Who may call what: every item and booking endpoint × anonymous, USER, the owning organizer,
another organizer, ADMIN."""

import pytest

from catalog.tests.factories import item_payload, make_item
from reservations.services import booking_create
from reservations.tests.factories import once_started

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "user", "owner", "other_organizer", "admin"]

# endpoint -> expected status per caller (public item, a booking of it made by `booker`).
MATRIX = {
    "list items": ("get", "/api/v1/items", None, [200, 200, 200, 200, 200]),
    "create item": ("post", "/api/v1/items", "item", [401, 403, 201, 201, 201]),
    "get item": ("get", "/api/v1/items/{item}", None, [200, 200, 200, 200, 200]),
    "update item": ("put", "/api/v1/items/{item}", {"name": "Renamed"}, [401, 403, 200, 403, 200]),
    "delete item": ("delete", "/api/v1/items/{item}", None, [401, 403, 204, 403, 204]),
    "availability": ("get", "/api/v1/items/{item}/availability", None, [200, 200, 200, 200, 200]),
    "book item": ("post", "/api/v1/bookings/items/{item}", {}, [401, 201, 201, 201, 201]),
    "item bookings": ("get", "/api/v1/bookings/items/{item}", None, [401, 403, 200, 403, 200]),
    "my bookings": ("get", "/api/v1/bookings/me", None, [401, 200, 200, 200, 200]),
    # A booking is 404 to those who cannot see it (anyone but its owner, the item's organizer and
    # ADMINs); 403 to the organizer, who sees it but may not cancel it. /status is for organizers
    # and ADMINs: a plain USER is refused by role (403) before any lookup.
    "cancel booking": ("put", "/api/v1/bookings/{booking}/cancel", None, [401, 404, 403, 404, 200]),
    "booking status": ("put", "/api/v1/bookings/{booking}/status", {"status": "CANCELLED"},
                       [401, 403, 200, 404, 200]),
    "my conflicts": ("get", "/api/v1/users/me/conflicts?startTime=2031-09-15T09:00:00"
                            "&endTime=2031-09-15T11:00:00", None, [401, 200, 200, 200, 200]),
}
CASES = [(name, role, expected[i]) for name, (*_, expected) in MATRIX.items() for i, role in enumerate(ROLES)]


@pytest.mark.parametrize(("endpoint", "role", "expected"), CASES)
def test_role_matrix(endpoint, role, expected, make_user, client_for, organizer, other_organizer, admin):
    callers = {"anonymous": None, "user": make_user(), "owner": organizer,
               "other_organizer": other_organizer, "admin": admin}
    item = make_item(organizer, capacity=5)
    booker = make_user()
    booking = booking_create(user=booker, item_id=item.pk)
    method, path, body, _ = MATRIX[endpoint]
    body = item_payload() if body == "item" else body
    response = getattr(client_for(callers[role]), method)(
        path.format(item=item.pk, booking=booking.pk), body, format="json")
    assert response.status_code == expected, response.content
    if expected >= 400:
        assert response.json()["status"] == expected


@pytest.mark.parametrize("role", ROLES)
def test_private_item_endpoints_are_404_for_those_who_cannot_see_it(role, make_user, client_for, organizer,
                                                                     other_organizer, admin):
    callers = {"anonymous": None, "user": make_user(), "owner": organizer,
               "other_organizer": other_organizer, "admin": admin}
    item = make_item(organizer, is_private=True)
    client = client_for(callers[role])
    sees = role in {"owner", "admin"}
    assert client.get(f"/api/v1/items/{item.pk}").status_code == (200 if sees else 404)
    assert client.get(f"/api/v1/items/{item.pk}/availability").status_code == (200 if sees else 404)
    if role != "anonymous":
        assert client.post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").status_code == (
            201 if sees else 404)
    if role in {"other_organizer"}:
        assert client.put(f"/api/v1/items/{item.pk}", {"name": "x"}, format="json").status_code == 404
        assert client.delete(f"/api/v1/items/{item.pk}").status_code == 404
        assert client.get(f"/api/v1/bookings/items/{item.pk}").status_code == 404


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
