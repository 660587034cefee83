"""Seed 004 §5 "Advanced Features & Testing", step by step with the seed's numbers (dates moved
into the future so the items are bookable)."""

from datetime import timedelta

import pytest

from catalog.tests.factories import FUTURE, item_payload, local_iso

pytestmark = pytest.mark.django_db


def book(client, item_id, tier=None):
    body = {} if tier is None else {"priceTier": tier}
    return client.post(f"/api/v1/bookings/items/{item_id}", body, format="json")


def book_as_new_users(make_user, client_for, item_id, count, tier=None):
    for _ in range(count):
        response = book(client_for(make_user()), item_id, tier)
        assert response.status_code == 201, response.json()


def get_item(client, item_id):
    response = client.get(f"/api/v1/items/{item_id}")
    assert response.status_code == 200
    return response.json()


class TestPrivateItems:
    def test_private_item_visible_only_to_organizer_and_admin(self, make_user, client_for, admin):
        organizer1 = make_user(roles=["EVENT_ORGANIZER"], username="organizer1")  # step 1
        created = client_for(organizer1).post("/api/v1/items", item_payload(isPrivate=True), format="json")
        assert created.status_code == 201 and created.json()["isPrivate"] is True  # step 2
        private_id = created.json()["id"]
        public_id = client_for(organizer1).post("/api/v1/items", item_payload(name="Open"), format="json").json()["id"]
        user = make_user(roles=["USER"])

        assert client_for(organizer1).get(f"/api/v1/items/{private_id}").status_code == 200  # step 3
        hidden = client_for(user).get(f"/api/v1/items/{private_id}")  # step 4
        assert hidden.status_code == 404 and hidden.json()["error"] == "not_found"
        assert client_for().get(f"/api/v1/items/{private_id}").status_code == 404
        listed = [i["id"] for i in client_for(user).get("/api/v1/items").json()]  # step 5
        assert public_id in listed and private_id not in listed
        assert private_id not in [i["id"] for i in client_for().get("/api/v1/items").json()]
        assert client_for(admin).get(f"/api/v1/items/{private_id}").status_code == 200  # step 6
        refused = book(client_for(user), private_id)  # step 7
        assert refused.status_code == 404 and refused.json()["message"] == "Item not found"
        assert client_for().get(f"/api/v1/items/{private_id}/availability").status_code == 404

        own = [i["id"] for i in client_for(organizer1).get("/api/v1/items?onlyMyItems=true").json()]
        assert sorted(own) == sorted([private_id, public_id])
        assert private_id in [i["id"] for i in client_for(admin).get("/api/v1/items").json()]
        other = make_user(roles=["EVENT_ORGANIZER"])
        assert client_for(other).get(f"/api/v1/items/{private_id}").status_code == 404


class TestConflictDetection:
    def test_overlapping_booking_is_409_and_non_overlapping_succeeds(self, client_for, organizer, customer):
        org, user = client_for(organizer), client_for(customer)
        item_a = org.post("/api/v1/items", item_payload(name="A"), format="json").json()
        item_b = org.post("/api/v1/items", item_payload(
            name="B", startTime=local_iso(FUTURE + timedelta(hours=1)),
            endTime=local_iso(FUTURE + timedelta(hours=3))), format="json").json()
        assert book(user, item_a["id"]).status_code == 201  # step 3
        conflict = book(user, item_b["id"])  # step 4
        assert conflict.status_code == 409
        assert conflict.json()["error"] == "conflict" and "conflict" in conflict.json()["message"].lower()
        # step 5: back-to-back ([start, end) is half-open) and later items do not conflict
        back_to_back = org.post("/api/v1/items", item_payload(
            name="C", startTime=item_a["endTime"], endTime=local_iso(FUTURE + timedelta(hours=4))),
            format="json").json()
        assert book(user, back_to_back["id"]).status_code == 201
        mine = user.get("/api/v1/bookings/me").json()
        assert sorted(b["itemName"] for b in mine) == ["A", "C"]

    def test_back_to_back_booked_later_item_first(self, client_for, organizer, customer):
        """The booker's clash check is half-open from the other side too: holding [11:00, 12:00),
        booking [10:00, 11:00) is fine (`start_time < new end`, not `<=`)."""
        org, user = client_for(organizer), client_for(customer)
        later = org.post("/api/v1/items", item_payload(
            name="Later", startTime="2031-09-15T11:00:00", endTime="2031-09-15T12:00:00"), format="json").json()
        earlier = org.post("/api/v1/items", item_payload(
            name="Earlier", startTime="2031-09-15T10:00:00", endTime="2031-09-15T11:00:00"), format="json").json()
        assert book(user, later["id"]).status_code == 201
        assert book(user, earlier["id"]).status_code == 201

    def test_cancelled_booking_no_longer_conflicts(self, client_for, organizer, customer):
        org, user = client_for(organizer), client_for(customer)
        a = org.post("/api/v1/items", item_payload(name="A"), format="json").json()["id"]
        b = org.post("/api/v1/items", item_payload(name="B"), format="json").json()["id"]
        booking = book(user, a).json()
        assert book(user, b).status_code == 409
        assert user.put(f"/api/v1/bookings/{booking['id']}/cancel").status_code == 200
        assert book(user, b).status_code == 201

    def test_conflict_check_endpoint(self, client_for, organizer, customer):
        org, user = client_for(organizer), client_for(customer)
        item = org.post("/api/v1/items", item_payload(
            name="Another Meeting", startTime="2031-09-15T09:30:00", endTime="2031-09-15T10:30:00"),
            format="json").json()
        booking = book(user, item["id"]).json()
        found = user.get("/api/v1/users/me/conflicts",
                         {"startTime": "2031-09-15T09:00:00", "endTime": "2031-09-15T11:00:00"})
        assert found.status_code == 200
        assert found.json() == {"userId": customer.pk, "hasConflict": True, "conflictingBookings": [
            {"id": booking["id"], "itemName": "Another Meeting",
             "startTime": "2031-09-15T09:30:00", "endTime": "2031-09-15T10:30:00"}]}
        touching = user.get("/api/v1/users/me/conflicts",
                            {"startTime": "2031-09-15T10:30:00", "endTime": "2031-09-15T11:00:00"})
        assert touching.json() == {"userId": customer.pk, "hasConflict": False, "conflictingBookings": []}

    def test_window_ending_exactly_at_a_booking_start_is_no_conflict(self, client_for, organizer, customer):
        """Half-open ranges on the endpoint too: a window [09:00, 09:30) only touches a booking
        that starts at 09:30 (`start_time < end`, not `<=`)."""
        org, user = client_for(organizer), client_for(customer)
        item = org.post("/api/v1/items", item_payload(
            name="Another Meeting", startTime="2031-09-15T09:30:00", endTime="2031-09-15T10:30:00"),
            format="json").json()
        assert book(user, item["id"]).status_code == 201
        before = user.get("/api/v1/users/me/conflicts",
                          {"startTime": "2031-09-15T09:00:00", "endTime": "2031-09-15T09:30:00"})
        assert before.json() == {"userId": customer.pk, "hasConflict": False, "conflictingBookings": []}
        one_minute_in = user.get("/api/v1/users/me/conflicts",
                                 {"startTime": "2031-09-15T09:00:00", "endTime": "2031-09-15T09:31:00"})
        assert one_minute_in.json()["hasConflict"] is True

    def test_cancelled_booking_is_no_conflict_on_the_conflicts_endpoint(self, client_for, organizer, customer):
        """Only CONFIRMED bookings count: a cancelled one is history, not a clash."""
        org, user = client_for(organizer), client_for(customer)
        item = org.post("/api/v1/items", item_payload(
            name="Dropped", startTime="2031-09-15T09:30:00", endTime="2031-09-15T10:30:00"), format="json").json()
        booking = book(user, item["id"]).json()
        window = {"startTime": "2031-09-15T09:00:00", "endTime": "2031-09-15T11:00:00"}
        assert user.get("/api/v1/users/me/conflicts", window).json()["hasConflict"] is True
        assert user.put(f"/api/v1/bookings/{booking['id']}/cancel").status_code == 200
        assert user.get("/api/v1/users/me/conflicts", window).json() == {
            "userId": customer.pk, "hasConflict": False, "conflictingBookings": []}


class TestDynamicAvailability:
    def test_capacity_and_price_follow_bookings(self, make_user, client_for, organizer):
        item = client_for(organizer).post("/api/v1/items", item_payload(), format="json").json()  # step 1
        item_id, anonymous = item["id"], client_for()
        seen = get_item(anonymous, item_id)  # step 2
        assert (seen["availableCapacity"], seen["currentPrice"]) == (50, 49.99)

        book_as_new_users(make_user, client_for, item_id, 5, tier="Early Bird")  # step 3 explicitly…
        book_as_new_users(make_user, client_for, item_id, 5)  # …and implicitly
        seen = get_item(anonymous, item_id)  # step 4
        assert (seen["availableCapacity"], seen["currentPrice"]) == (40, 49.99)

        book_as_new_users(make_user, client_for, item_id, 15)  # step 5
        seen = get_item(anonymous, item_id)  # step 6
        assert (seen["availableCapacity"], seen["currentPrice"]) == (25, 59.99)
        listed = next(i for i in anonymous.get("/api/v1/items").json() if i["id"] == item_id)
        assert (listed["availableCapacity"], listed["currentPrice"]) == (25, 59.99)
        assert anonymous.get(f"/api/v1/items/{item_id}/availability").json() == {
            "itemId": item_id, "itemName": "Spring Boot Workshop", "totalCapacity": 50,
            "bookedSlots": 25, "availableSlots": 25}

        book_as_new_users(make_user, client_for, item_id, 25)
        assert get_item(anonymous, item_id)["availableCapacity"] == 0
        full = book(client_for(make_user()), item_id)  # step 7
        assert full.status_code == 400 and full.json()["message"] == "Capacity exceeded"

    def test_named_tier_sold_out_and_unknown_tier(self, make_user, client_for, organizer):
        item_id = client_for(organizer).post("/api/v1/items", item_payload(), format="json").json()["id"]
        book_as_new_users(make_user, client_for, item_id, 20, tier="Early Bird")
        sold_out = book(client_for(make_user()), item_id, tier="Early Bird")
        assert sold_out.status_code == 400 and "sold out" in sold_out.json()["message"]
        unknown = book(client_for(make_user()), item_id, tier="VIP")
        assert unknown.status_code == 400 and "priceTier" in unknown.json()["fields"]
        assert get_item(client_for(), item_id)["availableCapacity"] == 30

    def test_cancelling_frees_the_seat_and_its_tier_price(self, make_user, client_for, organizer):
        item_id = client_for(organizer).post("/api/v1/items", item_payload(), format="json").json()["id"]
        book_as_new_users(make_user, client_for, item_id, 19)
        last_early = make_user()
        booking = book(client_for(last_early), item_id).json()
        assert booking["pricePaid"] == 49.99
        assert get_item(client_for(), item_id)["currentPrice"] == 59.99
        client_for(last_early).put(f"/api/v1/bookings/{booking['id']}/cancel")
        seen = get_item(client_for(), item_id)
        assert (seen["availableCapacity"], seen["currentPrice"]) == (31, 49.99)


class TestDynamicPricing:
    TIERS = [
        {"tier": "Super Early Bird", "price": 29.99, "maxCapacity": 5},
        {"tier": "Early Bird", "price": 49.99, "maxCapacity": 20},
        {"tier": "Regular", "price": 69.99, "maxCapacity": 25},
    ]

    def test_price_moves_up_through_the_tiers(self, make_user, client_for, organizer, admin):
        created = client_for(organizer).post("/api/v1/items", item_payload(priceTiers=self.TIERS), format="json")
        assert created.status_code == 201 and created.json()["capacity"] == 50  # step 1
        item_id = created.json()["id"]
        assert get_item(client_for(), item_id)["currentPrice"] == 29.99  # step 2

        paid = []
        for _ in range(5):
            paid.append(book(client_for(make_user()), item_id).json()["pricePaid"])
        assert paid == [29.99] * 5  # step 6: pricePaid is the price at the moment of booking
        assert get_item(client_for(), item_id)["currentPrice"] == 49.99  # step 3

        for _ in range(20):
            paid.append(book(client_for(make_user()), item_id).json()["pricePaid"])
        assert paid[5:] == [49.99] * 20
        assert get_item(client_for(), item_id)["currentPrice"] == 69.99  # step 4

        for _ in range(25):
            paid.append(book(client_for(make_user()), item_id).json()["pricePaid"])
        assert paid[25:] == [69.99] * 25
        fifty_first = book(client_for(make_user()), item_id)  # step 5
        assert fifty_first.status_code == 400
        assert fifty_first.json()["message"] == "Capacity exceeded"

        bookings = client_for(admin).get(f"/api/v1/bookings/items/{item_id}").json()
        assert len(bookings) == 50 and {b["status"] for b in bookings} == {"CONFIRMED"}
        assert sorted(b["pricePaid"] for b in bookings) == sorted(paid)
