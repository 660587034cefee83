"""Bookings over HTTP: status codes and bodies of the booking endpoints, refused requests, query
counts of the lists, Idempotency-Key, and what a client is told when a commit's outcome is
unknown. The rules themselves, called as services: test_services.py."""

import re
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings_project.tests.helpers import list_cost
from catalog.models import BookableItem
from catalog.tests.factories import make_item
from ops.models import OutboxEvent
from reservations.exceptions import ItemAlreadyStarted
from reservations.models import Booking
from reservations.services import booking_create, booking_set_status
from reservations.tests.factories import book, counters, once_started

pytestmark = pytest.mark.django_db


class TestOutbox:
    def test_confirmed_and_cancelled_events_carry_the_template_payload(self, client_for, customer, organizer,
                                                                      settings):
        settings.TIME_ZONE = "Europe/Berlin"
        item = make_item(organizer, name="Workshop", location="Room 1", tiers=[("Early Bird", "49.99", 10)])
        created = client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").json()
        client_for(customer).put(f"/api/v1/bookings/{created['id']}/cancel")
        confirmed, cancelled = (OutboxEvent.objects.get(event_type=t) for t in
                                ("BOOKING_CONFIRMED", "BOOKING_CANCELLED"))
        expected = {"bookingId": created["id"], "userId": customer.pk, "username": "testuser",
                    "itemId": item.pk, "itemName": "Workshop", "location": "Room 1",
                    "startTime": "2031-09-15T10:00:00+02:00", "endTime": "2031-09-15T12:00:00+02:00",
                    "tier": "Early Bird", "pricePaid": "49.99",
                    "bookingDate": timezone.localtime(Booking.objects.get(pk=created["id"]).booking_date).isoformat()}
        assert confirmed.payload == {**expected, "status": "CONFIRMED", "revision": 0}
        assert cancelled.payload == {**expected, "status": "CANCELLED", "revision": 1}
        assert confirmed.recipient_email == cancelled.recipient_email == customer.email
        syncs = [e.payload["entities"] for e in OutboxEvent.objects.filter(event_type="DOCUMENT_SYNC")]
        booking_sync = [["booking", str(created["id"])], ["item", str(item.pk)]]
        assert syncs.count(booking_sync) == 2


class TestStatusMachine:
    def test_invalid_move_over_http_is_409_and_unknown_status_400(self, client_for, customer, organizer):
        item = make_item(organizer)
        booking = booking_create(user=customer, item_id=item.pk)
        with once_started(item):
            put = client_for(organizer).put
            assert put(f"/api/v1/bookings/{booking.pk}/status", {"status": "COMPLETED"},
                       format="json").status_code == 200
            again = put(f"/api/v1/bookings/{booking.pk}/status", {"status": "CANCELLED"}, format="json")
            assert again.status_code == 409 and again.json()["error"] == "conflict"
            bad = put(f"/api/v1/bookings/{booking.pk}/status", {"status": "DONE"}, format="json")
            assert bad.status_code == 400 and "status" in bad.json()["fields"]
            assert client_for(customer).put(f"/api/v1/bookings/{booking.pk}/cancel").status_code == 409
            assert put("/api/v1/bookings/999999/status", {"status": "CANCELLED"}, format="json").status_code == 404

    def test_a_booking_is_completed_only_once_its_item_started(self, client_for, customer, make_user, organizer):
        """Completing frees the seat: before the start that seat could be sold again, and the
        item would hold more people than its capacity."""
        item = make_item(organizer, tiers=[("A", "10.00", 1)], capacity=1)
        booking = booking_create(user=customer, item_id=item.pk)

        early = client_for(organizer).put(f"/api/v1/bookings/{booking.pk}/status", {"status": "COMPLETED"},
                                          format="json")

        assert early.status_code == 409 and "has not started" in early.json()["message"]
        assert Booking.objects.get(pk=booking.pk).status == "CONFIRMED" and counters(item) == (1, [1])
        refused = client_for(make_user()).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json")
        assert refused.status_code == 400 and refused.json()["message"] == "Capacity exceeded"
        with once_started(item):
            assert booking_set_status(actor=organizer, booking_id=booking.pk,
                                      status="COMPLETED").status == "COMPLETED"

    def test_once_the_item_started_its_owner_cannot_cancel_but_an_admin_can(self, client_for, customer,
                                                                             organizer, admin):
        item = make_item(organizer, tiers=[("A", "7.50", 5)], capacity=5)
        booking = booking_create(user=customer, item_id=item.pk)
        started = timezone.now() - timedelta(minutes=5)
        for model, pk in ((BookableItem, item.pk), (Booking, booking.pk)):
            model.objects.filter(pk=pk).update(start_time=started, end_time=started + timedelta(hours=2))

        refused = client_for(customer).put(f"/api/v1/bookings/{booking.pk}/cancel")
        assert refused.status_code == 409 and "already started" in refused.json()["message"]
        assert Booking.objects.get(pk=booking.pk).status == "CONFIRMED" and counters(item) == (1, [1])

        assert client_for(admin).put(f"/api/v1/bookings/{booking.pk}/cancel").status_code == 200
        assert Booking.objects.get(pk=booking.pk).status == "CANCELLED" and counters(item) == (0, [0])


class TestRefusals:
    def test_started_item_is_400(self, client_for, customer, organizer):
        item = make_item(organizer, start=timezone.now() - timedelta(minutes=5))
        with pytest.raises(ItemAlreadyStarted):
            booking_create(user=customer, item_id=item.pk)
        response = client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json")
        assert response.status_code == 400 and "started" in response.json()["message"]
        assert counters(item)[0] == 0

    @pytest.mark.parametrize(("raw", "field"), [
        (b'{"priceTier": 5}', "priceTier"), (b'{"priceTier": ["A"]}', "priceTier"), (b"{broken", None),
        (b'{"priceTier": "Nope"}', "priceTier"), (b'"A"', None), (b'{"priceTier": "' + b"x" * 500 + b'"}', "priceTier"),
    ])
    def test_hostile_booking_bodies_are_400(self, client_for, customer, organizer, raw, field):
        item = make_item(organizer, tiers=[("A", "1.00", 10)])
        response = client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", raw,
                                             content_type="application/json")
        assert response.status_code == 400
        if field:
            assert field in response.json()["fields"]
        assert counters(item) == (0, [0])

    @pytest.mark.parametrize("query", ["", "startTime=2031-09-15T09:00:00", "startTime=x&endTime=y",
                                       "startTime=2031-09-15T11:00:00&endTime=2031-09-15T09:00:00"])
    def test_conflict_check_needs_a_valid_window(self, client_for, customer, query):
        response = client_for(customer).get(f"/api/v1/users/me/conflicts?{query}")
        assert response.status_code == 400 and response.json()["fields"]

    def test_unknown_item_is_404(self, client_for, customer):
        assert client_for(customer).post("/api/v1/bookings/items/424242", {}, format="json").status_code == 404


class TestQueryCounts:
    def test_my_bookings_and_item_bookings_cost_the_same_for_1_and_many(self, make_user, client_for, customer,
                                                                        organizer, settings):
        settings.MAX_ACTIVE_BOOKINGS_PER_USER = 50  # this customer holds 30 upcoming bookings
        start = make_item(organizer).start_time
        items = [make_item(organizer, name=f"I{i}", start=start + timedelta(days=i + 1),
                           capacity=30, tiers=[("A", "3.50", 30)]) for i in range(30)]
        booking_create(user=customer, item_id=items[0].pk)
        me, item_path = client_for(customer), f"/api/v1/bookings/items/{items[0].pk}"
        one_me, one_item = list_cost(me, "/api/v1/bookings/me"), list_cost(client_for(organizer), item_path)
        for item in items[1:]:
            booking_create(user=customer, item_id=item.pk)
        for _ in range(20):
            booking_create(user=make_user(), item_id=items[0].pk)
        assert list_cost(me, "/api/v1/bookings/me") == (one_me[0], 30)
        assert list_cost(client_for(organizer), item_path) == (one_item[0], 21)
        assert one_me[0] <= 2

    def test_booking_lists_read_only_the_columns_they_show(self, client_for, customer, organizer):
        """Not every column of each row's user and item (a password hash, the item's
        description repeated on each of an item's 3,000 bookings: 650 → 285 ms to read them)."""
        item = make_item(organizer, description="A long description " * 50)
        booking_create(user=customer, item_id=item.pk)
        for client, path in ((client_for(customer), "/api/v1/bookings/me"),
                             (client_for(organizer), f"/api/v1/bookings/items/{item.pk}")):
            with CaptureQueriesContext(connection) as captured:
                body = client.get(path).json()
            assert body[0]["username"] == customer.username and body[0]["itemName"] == item.name
            [listed] = [q["sql"] for q in captured.captured_queries if 'FROM "reservations_booking"' in q["sql"]]
            assert '"description"' not in listed and '"password"' not in listed and '"tags"' not in listed, listed


@pytest.mark.parametrize("raw", [b"[]", b"false", b"0", b'""', b"null", b"[1]", b'"x"'])
def test_a_booking_body_that_is_not_an_object_is_400_and_books_nothing(client_for, customer, organizer, raw):
    item = make_item(organizer)
    response = client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", raw, content_type="application/json")
    assert response.status_code == 400
    assert not Booking.objects.filter(item=item).exists()


def test_a_booking_without_a_body_or_with_an_empty_object_books(client_for, make_user, organizer):
    item = make_item(organizer)
    assert client_for(make_user()).post(f"/api/v1/bookings/items/{item.pk}").status_code == 201
    assert client_for(make_user()).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").status_code == 201


def test_booking_the_same_item_again_is_409_not_a_second_seat(client_for, customer, organizer):
    """What a client sees when it retries a booking whose first answer was lost (OPERATIONS.md)."""
    item = make_item(organizer, tiers=[("A", "10.00", 10)])
    first = client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json")
    again = client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json")
    assert (first.status_code, again.status_code) == (201, 409)
    assert counters(item) == (1, [1])


@pytest.fixture
def commit_reply_lost(monkeypatch):
    """Inside `with commit_reply_lost():` the database commits, then the connection breaks
    before the reply arrives (what a crash between the two looks like to the client);
    `commit_reply_lost(committed=False)`: it breaks before the server committed."""
    import psycopg
    from django.db import OperationalError

    real_commit = connection.commit

    @contextmanager
    def lost(committed=True):
        def commit_then_lose_the_reply():
            if committed:  # else the crash came first: the server never committed
                real_commit()
            raise OperationalError("server closed the connection unexpectedly") from \
                psycopg.OperationalError("server closed the connection unexpectedly")

        with monkeypatch.context() as patch:
            patch.setattr("bookings_project.transactions._pipeline_supported", lambda: False)
            patch.setattr(connection, "commit", commit_then_lose_the_reply)
            yield

    return lost


class TestBookingBody:
    """BookingResponse: the seed's fields, plus what was bought and when it takes place."""

    def test_a_booking_says_its_tier_and_times(self, client_for, customer, organizer, settings):
        settings.TIME_ZONE = "Europe/Berlin"
        item = make_item(organizer, name="Workshop", tiers=[("Early Bird", "49.99", 1), ("Regular", "59.99", 9)])
        client = client_for(customer)
        created = client.post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").json()
        free = make_item(organizer, name="Meetup", start=item.start_time + timedelta(days=1))
        gratis = client.post(f"/api/v1/bookings/items/{free.pk}", {}, format="json").json()

        assert created == {"id": created["id"], "userId": customer.pk, "username": "testuser", "itemId": item.pk,
                           "itemName": "Workshop", "bookingDate": created["bookingDate"], "status": "CONFIRMED",
                           "pricePaid": 49.99, "priceTier": "Early Bird", "startTime": "2031-09-15T10:00:00",
                           "endTime": "2031-09-15T12:00:00"}
        assert (gratis["priceTier"], gratis["pricePaid"], gratis["startTime"]) == (None, 0, "2031-09-16T10:00:00")
        assert [b["priceTier"] for b in client.get("/api/v1/bookings/me").json()] == [None, "Early Bird"]

    def test_the_tier_bought_is_kept_when_the_organizer_removes_the_tier_later(self, client_for, customer,
                                                                               organizer):
        from catalog.services import item_update

        item = make_item(organizer, tiers=[("Early Bird", "49.99", 5), ("Regular", "59.99", 5)])
        client = client_for(customer)
        booked = client.post(f"/api/v1/bookings/items/{item.pk}", {}, format="json", HTTP_IDEMPOTENCY_KEY="k").json()
        client.put(f"/api/v1/bookings/{booked['id']}/cancel")
        # (no active booking holds it any more, so the organizer may remove it)
        item_update(actor=organizer, item_id=item.pk, price_tiers=[{"name": "Regular", "price": Decimal("59.99"),
                                                                      "max_capacity": 10}])

        assert Booking.objects.get(pk=booked["id"]).tier_id is None
        [mine] = client.get("/api/v1/bookings/me").json()
        assert (mine["priceTier"], mine["pricePaid"], mine["status"]) == ("Early Bird", 49.99, "CANCELLED")
        # A retry of that request is still recognised by the name it was booked under.
        replay = client.post(f"/api/v1/bookings/items/{item.pk}", {"priceTier": "Early Bird"}, format="json",
                             HTTP_IDEMPOTENCY_KEY="k")
        assert replay.status_code == 201 and replay.json()["id"] == booked["id"]
        other = client.post(f"/api/v1/bookings/items/{item.pk}", {"priceTier": "Regular"}, format="json",
                            HTTP_IDEMPOTENCY_KEY="k")
        assert other.status_code == 409

    def test_a_booking_follows_its_item_when_the_item_moves(self, client_for, customer, organizer):
        from catalog.services import item_update

        item = make_item(organizer)
        client = client_for(customer)
        booked = client.post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").json()
        item_update(actor=organizer, item_id=item.pk, start_time=item.start_time + timedelta(days=2),
                    end_time=item.end_time + timedelta(days=2, hours=1))
        [mine] = client.get("/api/v1/bookings/me").json()
        assert (mine["id"], mine["startTime"], mine["endTime"]) == (
            booked["id"], "2031-09-17T10:00:00", "2031-09-17T13:00:00")

    def test_a_deleted_items_bookers_still_see_what_they_had_booked(self, client_for, customer, organizer):
        item = make_item(organizer, name="Gone", tiers=[("A", "10.00", 10)])
        client = client_for(customer)
        booked = client.post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").json()
        assert client_for(organizer).delete(f"/api/v1/items/{item.pk}").status_code == 204
        assert client.get(f"/api/v1/items/{item.pk}").status_code == 404
        [mine] = client.get("/api/v1/bookings/me").json()
        assert (mine["itemName"], mine["priceTier"], mine["startTime"], mine["status"]) == (
            "Gone", "A", booked["startTime"], "CANCELLED")


def test_the_migration_fills_in_the_tier_names_of_existing_bookings(make_user, customer, organizer):
    from importlib import import_module
    from types import SimpleNamespace

    from django.apps import apps

    fill_tier_names = import_module("reservations.migrations.0005_booking_tier_name").fill_tier_names
    item = make_item(organizer, tiers=[("A", "10.00", 1), ("B", "20.00", 9)])
    first, second = (booking_create(user=make_user(), item_id=item.pk) for _ in range(2))
    free = booking_create(user=customer, item_id=make_item(organizer, start=item.start_time + timedelta(days=1)).pk)
    Booking.objects.update(tier_name=None)

    fill_tier_names(apps, SimpleNamespace(connection=connection))
    assert dict(Booking.objects.values_list("pk", "tier_name")) == {first.pk: "A", second.pk: "B", free.pk: None}


def test_my_bookings_are_listed_newest_first(client_for, customer, organizer):
    """GET /bookings/me: the latest booking first (booking_date, then id, descending)."""
    start = timezone.now() + timedelta(days=30)
    items = [make_item(organizer, name=f"Slot {n}", start=start + timedelta(hours=3 * n), hours=1) for n in range(3)]
    booked_at = timezone.now() - timedelta(days=10)
    # booked in the order 1, 0, 2 (so neither item order nor id order gives the answer)
    middle, oldest, newest = (book(customer, items[n], booked_at=booked_at + timedelta(days=d))
                              for n, d in ((0, 2), (1, 1), (2, 3)))
    mine = client_for(customer).get("/api/v1/bookings/me").json()
    assert [b["id"] for b in mine] == [newest.pk, middle.pk, oldest.pk]


@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_at_the_commit_answers_that_the_booking_may_exist(
        client_for, customer, organizer, commit_reply_lost, caplog):
    """The database crashed between committing and replying, or before: nobody can tell, so
    the answer says so (and where to look) instead of claiming the booking failed."""
    item = make_item(organizer, tiers=[("A", "10.00", 10)])
    with commit_reply_lost():
        response = client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json")

    assert response.status_code == 503 and response["Retry-After"]
    body = response.json()
    assert body["status"] == 503 and "may or may not have been made" in body["message"]
    assert "GET /api/v1/bookings/me" in body["message"]
    [booking] = Booking.objects.filter(user=customer)
    assert f"Booking {booking.pk} " in caplog.text and "outcome unknown" in caplog.text
    # The booking exists; the client that looks finds it, and one that retries gets a 409.
    mine = client_for(customer).get("/api/v1/bookings/me").json()
    assert [b["id"] for b in (mine["content"] if isinstance(mine, dict) else mine)] == [booking.pk]
    assert client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").status_code == 409


class TestIdempotencyKey:
    """POST /bookings with Idempotency-Key: one booking per key, whatever the client retries."""

    @staticmethod
    def book(client, item, key=None, **body):
        headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
        return client.post(f"/api/v1/bookings/items/{item.pk}", body, format="json", **headers)

    def test_a_retry_with_the_same_key_returns_the_booking_it_made(self, client_for, customer, organizer):
        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        client = client_for(customer)
        first, again = self.book(client, item, "order-42"), self.book(client, item, "order-42")

        assert (first.status_code, again.status_code) == (201, 201)
        assert "Idempotent-Replayed" not in first and again["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert counters(item) == (1, [1])
        assert OutboxEvent.objects.filter(event_type="BOOKING_CONFIRMED").count() == 1  # one email

    def test_a_replay_returns_the_booking_as_it_is_now(self, client_for, customer, organizer):
        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        client = client_for(customer)
        first = self.book(client, item, "k")
        assert client.put(f"/api/v1/bookings/{first.json()['id']}/cancel").status_code == 200
        again = self.book(client, item, "k")
        assert again.status_code == 201 and again.json()["status"] == "CANCELLED"
        assert counters(item) == (0, [0])

    def test_the_same_key_for_another_item_or_tier_is_409(self, client_for, customer, organizer):
        item = make_item(organizer, capacity=20, tiers=[("A", "10.00", 10), ("B", "20.00", 10)])
        other = make_item(organizer, start=item.start_time + timedelta(days=30))
        client = client_for(customer)
        assert self.book(client, item, "k", priceTier="A").status_code == 201

        for response in (self.book(client, other, "k"), self.book(client, item, "k", priceTier="B")):
            assert response.status_code == 409, response.json()
            assert "Idempotency-Key" in response.json()["message"]
        assert self.book(client, item, "k", priceTier="A").status_code == 201  # the same request
        assert Booking.objects.filter(user=customer).count() == 1

    def test_keys_belong_to_their_user(self, client_for, make_user, organizer):
        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        ids = {self.book(client_for(make_user()), item, "same-key").json()["id"] for _ in range(2)}
        assert len(ids) == 2 and counters(item) == (2, [2])

    @pytest.mark.parametrize("key", ["", "with space", "x" * 65, "ünïcode", "tab\there"])
    def test_a_malformed_key_is_400_and_books_nothing(self, client_for, customer, organizer, key):
        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        response = self.book(client_for(customer), item, key)
        assert response.status_code == 400
        assert "Idempotency-Key" in response.json()["fields"]
        assert counters(item) == (0, [0])

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.parametrize("committed", [True, False], ids=["saved", "not-saved"])
    def test_after_an_unknown_outcome_a_retry_with_the_key_settles_it(
            self, client_for, customer, organizer, commit_reply_lost, committed):
        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        client = client_for(customer)
        with commit_reply_lost(committed=committed):
            lost = self.book(client, item, "k-lost")
        assert lost.status_code == 503 and "same Idempotency-Key" in lost.json()["message"]
        assert lost.json()["code"] == "booking_outcome_unknown"  # (not "retry later": it may be saved)
        assert counters(item) == ((1, [1]) if committed else (0, [0]))

        again = self.book(client, item, "k-lost")
        assert again.status_code == 201
        # Saved: the retry is a replay of that booking. Not saved: the retry books afresh.
        assert again.headers.get("Idempotent-Replayed") == ("true" if committed else None)
        assert counters(item) == (1, [1])

    @pytest.mark.django_db(transaction=True)
    def test_a_replay_whose_commit_is_lost_still_answers_the_booking(
            self, client_for, customer, organizer, commit_reply_lost):
        """A replay writes nothing: whatever became of its COMMIT, the answer is known."""
        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        client = client_for(customer)
        first = self.book(client, item, "k")
        with commit_reply_lost(committed=False):
            again = self.book(client, item, "k")
        assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()

    def test_a_retry_naming_a_tier_the_booking_no_longer_has_is_a_replay(self, client_for, customer, organizer):
        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        client = client_for(customer)
        first = self.book(client, item, "k", priceTier="A")
        Booking.objects.filter(pk=first.json()["id"]).update(tier=None)  # its tier was removed since
        again = self.book(client, item, "k", priceTier="A")
        assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"

    @pytest.mark.django_db(transaction=True)
    def test_the_unique_key_constraint_backs_up_the_check(self, customer, organizer, monkeypatch):
        """Were the check under the user lock ever to miss (it cannot, today), the INSERT hits
        the key's unique constraint and the next attempt returns the booking that won."""
        if connection.vendor != "postgresql":
            pytest.skip("PostgreSQL names the constraint; SQLite serializes writers")
        from reservations import services

        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        first, _ = services.booking_create_once(user=customer, item_id=item.pk, request_key="k")
        services.booking_cancel(actor=customer, booking_id=first.pk)  # so no overlap check stops the retry first
        real, calls = services._booking_made_with, []
        monkeypatch.setattr(services, "_booking_made_with",
                            lambda *args: calls.append(1) or (None if len(calls) == 1 else real(*args)))

        again, created = services.booking_create_once(user=customer, item_id=item.pk, request_key="k")

        assert (again.pk, created, len(calls)) == (first.pk, False, 2)
        assert counters(item) == (0, [0]) and Booking.objects.filter(user=customer).count() == 1


class TestBookingListFilters:
    """?status= (repeatable) on both booking lists; ?from=&to= on bookings/me (the item's time)."""

    @pytest.fixture
    def mine(self, customer, organizer, settings):
        settings.TIME_ZONE = "Europe/Berlin"
        start = timezone.make_aware(datetime(2031, 9, 15, 10))
        items = [make_item(organizer, name=f"Day {d}", start=start + timedelta(days=d), capacity=5) for d in range(3)]
        bookings = [book(customer, item) for item in items]
        booking_set_status(actor=organizer, booking_id=bookings[1].pk, status="CANCELLED")
        return items, [b.pk for b in bookings]

    def test_by_status(self, client_for, customer, mine):
        client = client_for(customer)
        assert [b["id"] for b in client.get("/api/v1/bookings/me?status=CANCELLED").json()] == [mine[1][1]]
        both = client.get("/api/v1/bookings/me?status=CANCELLED&status=CONFIRMED").json()
        assert sorted(b["id"] for b in both) == sorted(mine[1])
        assert client.get("/api/v1/bookings/me?status=COMPLETED").json() == []

    def test_by_the_items_time_a_bare_date_being_that_local_day(self, client_for, customer, mine):
        client = client_for(customer)
        ids = mine[1]

        def listed(query):
            return sorted(b["id"] for b in client.get(f"/api/v1/bookings/me?{query}").json())

        assert listed("from=2031-09-16") == ids[1:]
        assert listed("from=2031-09-16&to=2031-09-16") == [ids[1]]
        assert listed("to=2031-09-15T10:00:00") == []  # [from, to) overlaps: back-to-back is not in
        assert listed("from=2031-09-15T11:59:59&to=2031-09-16T10:00:01&status=CONFIRMED") == [ids[0]]

    def test_the_organizers_guest_list_by_status_with_paging(self, client_for, organizer, mine):
        items, ids = mine
        client = client_for(organizer)
        response = client.get(f"/api/v1/bookings/items/{items[1].pk}?status=CONFIRMED&page=1&pageSize=10")
        assert response.json() == [] and response["X-Total-Count"] == "0"
        cancelled = client.get(f"/api/v1/bookings/items/{items[1].pk}?status=CANCELLED").json()
        assert [b["id"] for b in cancelled] == [ids[1]]

    def test_paging_links_keep_every_value_of_a_repeated_filter(self, client_for, customer, mine):
        """The Link header's pages are pages of the same list: `status=CANCELLED&status=CONFIRMED`
        must not turn into `status=CONFIRMED` on the next page (QueryDict.items() keeps the last)."""
        client = client_for(customer)
        first = client.get("/api/v1/bookings/me?status=CANCELLED&status=CONFIRMED&page=1&pageSize=2")
        assert first["X-Total-Count"] == "3"
        links = {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', first["Link"])}
        query = parse_qs(urlsplit(links["next"]).query)
        assert sorted(query["status"]) == ["CANCELLED", "CONFIRMED"] and query["page"] == ["2"], links
        second = client.get(links["next"])
        assert second["X-Total-Count"] == "3" and len(second.json()) == 1
        assert {b["id"] for b in first.json() + second.json()} == set(mine[1])

    @pytest.mark.parametrize("query, field", [("status=DONE", "status"), ("status=", "status"),
                                              ("from=yesterday", "from"), ("from=2031-09-16T12:00:00&to=2031-09-16T10:00:00", "to")])
    def test_a_bad_filter_is_400_naming_it(self, client_for, customer, mine, query, field):
        response = client_for(customer).get(f"/api/v1/bookings/me?{query}")
        assert response.status_code == 400 and list(response.json()["fields"]) == [field], response.json()

    def test_filters_cost_no_extra_query(self, client_for, customer, mine):
        client = client_for(customer)
        assert list_cost(client, "/api/v1/bookings/me?status=CONFIRMED&from=2031-09-15")[0] == \
            list_cost(client, "/api/v1/bookings/me")[0]
