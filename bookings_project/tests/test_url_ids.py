"""An id in the URL that no row can have (0, negative, beyond the 64-bit primary key) is a 404
JSON on every `{id}` route, never a 500: hand-written statements on the booking path must
refuse it as the ORM does (SQLite raised OverflowError on 99999999999999999999999)."""

import pytest

from catalog.exceptions import ItemNotFound
from reservations.services import booking_create

pytestmark = pytest.mark.django_db

IDS = ["99999999999999999999999", str(2**63), str(2**64 + 1), "0", "-1", "-99999999999999999999999"]
# (method, path, role, body): a caller whose role reaches the lookup (None: anonymous).
ROUTES = [
    ("post", "/api/v1/bookings/items/{id}", "USER", {}),
    ("post", "/api/v1/bookings/items/{id}", "USER", {"priceTier": "Regular"}),
    ("get", "/api/v1/bookings/items/{id}", "ADMIN", None),
    ("get", "/api/v1/items/{id}", None, None),
    ("put", "/api/v1/items/{id}", "EVENT_ORGANIZER", {"name": "Renamed"}),
    ("delete", "/api/v1/items/{id}", "EVENT_ORGANIZER", None),
    ("get", "/api/v1/items/{id}/availability", None, None),
    ("put", "/api/v1/bookings/{id}/cancel", "USER", None),
    ("put", "/api/v1/bookings/{id}/status", "ADMIN", {"status": "CANCELLED"}),
    ("get", "/api/v1/user/{id}", "ADMIN", None),
    ("put", "/api/v1/user/{id}", "ADMIN", {"email": "x@example.com"}),
    ("delete", "/api/v1/user/{id}", "ADMIN", None),
    ("get", "/jobs/{id}", "IT_OPERATOR", None),
    ("put", "/jobs/{id}/execute", "IT_OPERATOR", None),
]


@pytest.mark.parametrize("url_id", IDS)
@pytest.mark.parametrize(("method", "path", "role", "body"), ROUTES,
                         ids=[f"{m.upper()} {p}{' ' + str(b) if b else ''}" for m, p, _, b in ROUTES])
def test_ids_no_row_can_have_are_404_json(make_user, client_for, method, path, role, body, url_id):
    client = client_for(make_user(roles=[role]) if role else None)
    kwargs = {"format": "json"} if body is not None else {}
    response = getattr(client, method)(path.format(id=url_id), body, **kwargs)
    assert response.status_code == 404, response.content
    assert response.json()["status"] == 404


@pytest.mark.parametrize("item_id", [2**63, 10**30, -(2**63) - 1])
def test_the_booking_service_refuses_an_out_of_range_item_id(make_user, item_id):
    with pytest.raises(ItemNotFound):
        booking_create(user=make_user(), item_id=item_id)
