from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone

from bookings_project.tests.helpers import list_cost
from catalog.models import BookableItem
from catalog.tests.factories import FUTURE, item_payload, local_iso, make_item
from ops.models import OutboxEvent, SystemLog
from reservations.models import Booking
from reservations.services import booking_create

pytestmark = pytest.mark.django_db


def create(client, **overrides):
    return client.post("/api/v1/items", item_payload(**overrides), format="json")


class TestCreateAndRead:
    def test_seed_sample_round_trips(self, client_for, organizer):
        response = create(client_for(organizer), category="tech", tags=["java", "spring"])
        assert response.status_code == 201
        body = response.json()
        assert body == {
            **{k: v for k, v in item_payload().items()},
            "id": body["id"], "organizerId": organizer.pk, "organizerUsername": "event_organizer",
            "currentPrice": 49.99, "availableCapacity": 50, "category": "tech", "tags": ["java", "spring"],
            "createdAt": body["createdAt"], "updatedAt": body["updatedAt"],
        }
        assert client_for().get(f"/api/v1/items/{body['id']}").json() == body
        events = OutboxEvent.objects.filter(event_type="DOCUMENT_SYNC")
        assert [e.payload for e in events] == [{"entities": [["item", str(body["id"])]]}]

    def test_offset_datetimes_are_written_back_in_local_time(self, client_for, organizer, settings):
        settings.TIME_ZONE = "Europe/Berlin"
        body = create(client_for(organizer), startTime="2031-09-15T08:00:00Z",
                      endTime="2031-09-15T12:00:00+02:00").json()
        assert (body["startTime"], body["endTime"]) == ("2031-09-15T10:00:00", "2031-09-15T12:00:00")

    @pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
    def test_server_set_timestamps_are_whole_seconds_sent_ones_keep_their_fraction(
            self, client_for, organizer, settings, zone):
        settings.TIME_ZONE = zone
        body = create(client_for(organizer), startTime="2031-09-15T10:00:00.250000",
                      endTime="2031-09-15T12:00:00.5").json()
        assert (body["startTime"], body["endTime"]) == ("2031-09-15T10:00:00.250000", "2031-09-15T12:00:00.500000")
        stamp = timezone.make_aware(datetime(2025, 7, 13, 12, 0, 0, 136982))
        BookableItem.objects.filter(pk=body["id"]).update(created_at=stamp, updated_at=stamp)
        read = client_for().get(f"/api/v1/items/{body['id']}").json()
        assert (read["createdAt"], read["updatedAt"]) == ("2025-07-13T12:00:00", "2025-07-13T12:00:00")  # as the seed
        assert client_for().get("/api/v1/items").json()[0]["createdAt"] == "2025-07-13T12:00:00"

    def test_no_tiers_is_a_free_item(self, client_for, organizer):
        body = create(client_for(organizer), priceTiers=[]).json()
        assert (body["priceTiers"], body["currentPrice"], body["availableCapacity"]) == ([], 0, 50)
        assert create(client_for(organizer), priceTiers=None).json()["currentPrice"] == 0
        no_key = item_payload()
        del no_key["priceTiers"]
        assert client_for(organizer).post("/api/v1/items", no_key, format="json").json()["currentPrice"] == 0

    def test_a_tier_may_be_free(self, client_for, customer, organizer):
        """Prices are >= 0 (contract §5): a free first tier is sold at 0.00."""
        body = create(client_for(organizer), capacity=3, priceTiers=[
            {"tier": "Guest list", "price": 0, "maxCapacity": 1}, {"tier": "Regular", "price": 15, "maxCapacity": 2}])
        assert body.status_code == 201, body.content
        assert body.json()["currentPrice"] == 0
        booked = client_for(customer).post(f"/api/v1/bookings/items/{body.json()['id']}", {}, format="json")
        assert booked.status_code == 201 and booked.json()["pricePaid"] == 0
        assert Booking.objects.get(pk=booked.json()["id"]).tier.name == "Guest list"

    def test_past_items_may_be_created_as_history(self, client_for, organizer):
        past = timezone.localtime() - timedelta(days=30)
        response = create(client_for(organizer), startTime=local_iso(past),
                          endTime=local_iso(past + timedelta(hours=1)))
        assert response.status_code == 201


class TestValidation:
    @pytest.mark.parametrize(("overrides", "field"), [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"endTime": local_iso(FUTURE)}, "endTime"),
        ({"endTime": local_iso(FUTURE - timedelta(hours=1))}, "endTime"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": -5}, "capacity"),
        ({"capacity": "fifty"}, "capacity"),
        ({"capacity": 10.5}, "capacity"),
        ({"capacity": True}, "capacity"),
        ({"capacity": 10**30}, "capacity"),
        ({"startTime": "2031-13-45T99:00:00"}, "startTime"),
        ({"startTime": "tomorrow"}, "startTime"),
        ({"startTime": 12345}, "startTime"),
        ({"isPrivate": "maybe"}, "isPrivate"),
        # numbers and booleans are JSON numbers and booleans, as text fields take strings only
        ({"capacity": "50"}, "capacity"),
        ({"isPrivate": "yes"}, "isPrivate"),
        ({"isPrivate": 1}, "isPrivate"),
        ({"priceTiers": [{"tier": "A", "price": "49.99", "maxCapacity": 50}]}, "priceTiers.0.price"),
        ({"priceTiers": [{"tier": "A", "price": True, "maxCapacity": 50}]}, "priceTiers.0.price"),
        ({"priceTiers": [{"tier": "A", "price": 1, "maxCapacity": "50"}]}, "priceTiers.0.maxCapacity"),
        ({"tags": "java"}, "tags"),
        ({"priceTiers": "cheap"}, "priceTiers"),
        ({"priceTiers": [{"tier": "A", "price": -1, "maxCapacity": 50}]}, "priceTiers.0.price"),
        ({"priceTiers": [{"tier": "A", "price": 1e20, "maxCapacity": 50}]}, "priceTiers.0.price"),
        ({"priceTiers": [{"tier": "A", "price": "abc", "maxCapacity": 50}]}, "priceTiers.0.price"),
        ({"priceTiers": [{"tier": "A", "price": 1.999, "maxCapacity": 50}]}, "priceTiers.0.price"),
        ({"priceTiers": [{"tier": "A", "price": 1, "maxCapacity": 10**12}]}, "priceTiers.0.maxCapacity"),
        ({"priceTiers": [{"price": 1, "maxCapacity": 50}]}, "priceTiers.0.tier"),
        ({"priceTiers": [{"tier": "A", "price": 1, "maxCapacity": 20}]}, "priceTiers"),
        ({"priceTiers": [{"tier": "A", "price": 1, "maxCapacity": 25},
                         {"tier": "A", "price": 2, "maxCapacity": 25}]}, "priceTiers"),
    ])
    def test_bad_item_is_400_with_fields(self, client_for, organizer, overrides, field):
        response = create(client_for(organizer), **overrides)
        assert response.status_code == 400, response.content
        assert field in response.json()["fields"], response.json()
        assert not BookableItem.objects.exists()

    @pytest.mark.parametrize("raw", [b"{not json", b'{"name": "x",}', b"[1, 2]", b'"text"', b"null"])
    def test_malformed_or_non_object_body_is_400(self, client_for, organizer, raw):
        response = client_for(organizer).post("/api/v1/items", raw, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"] == "bad_request"

    @pytest.mark.parametrize("query", ["organizerId=abc", "organizerId=-1", "from=yesterday", "to=2031-02-30",
                                       "onlyMyItems=perhaps", "page=0", "pageSize=1000",
                                       "organizerId=999999999999999999999999",
                                       # digits of other scripts (Arabic-Indic ١, full-width ２): not an integer
                                       "organizerId=%D9%A1", "page=%EF%BC%92", "pageSize=%EF%BC%95"])
    def test_bad_filters_are_400(self, client_for, query):
        response = client_for().get(f"/api/v1/items?{query}")
        assert response.status_code == 400 and response.json()["fields"]

    def test_huge_or_unknown_ids_are_404(self, client_for):
        assert client_for().get("/api/v1/items/999999999999999999999999").status_code == 404
        assert client_for().get("/api/v1/items/abc").status_code == 404

    @pytest.mark.parametrize(("query", "field"), [("from=0001-01-01T00:00:00", "from"),
                                                  ("to=0001-01-01T00:30:00", "to"),
                                                  ("from=2031-03-30T02:30:00", "from")])
    def test_berlin_times_before_year_1_in_utc_or_in_the_dst_gap_are_400(self, client_for, settings,
                                                                         query, field):
        settings.TIME_ZONE = "Europe/Berlin"
        response = client_for().get(f"/api/v1/items?{query}")
        assert response.status_code == 400 and field in response.json()["fields"], response.content

    @pytest.mark.parametrize(("zone", "overrides", "field"), [
        ("America/New_York", {"endTime": "9999-12-31T23:00:00"}, "endTime"),
        ("Europe/Berlin", {"startTime": "0001-01-01T00:00:00"}, "startTime"),
        ("Europe/Berlin", {"startTime": "2031-03-30T02:00:00"}, "startTime"),
    ])
    def test_times_the_zone_cannot_store_or_skips_are_400(self, client_for, organizer, settings, zone, overrides,
                                                          field):
        settings.TIME_ZONE = zone
        response = create(client_for(organizer), **overrides)
        assert response.status_code == 400 and field in response.json()["fields"], response.content
        assert not BookableItem.objects.exists()


class TestFilters:
    def test_filters_fold_the_case_of_non_ascii_letters_as_postgresql_does(self, client_for, organizer):
        """`location`, `category` and `q` are case-insensitive beyond ASCII on both databases: on
        SQLite, Django's LIKE folds ASCII letters only (PostgreSQL compares UPPER()), so
        "?location=ÉCOLE" did not find "École" in the embedded mode."""
        item = make_item(organizer, name="Ñandú tour", location="École Polytechnique", category="Économie",
                         start=timezone.make_aware(FUTURE), description="Straße")

        def ids(query):
            response = client_for(None).get("/api/v1/items", query)
            assert response.status_code == 200
            return [i["id"] for i in response.json()]

        assert ids({"location": "éCOLE"}) == [item.pk]
        assert ids({"category": "ÉCONOMIE"}) == [item.pk]
        assert ids({"q": "ñANDÚ straße"}) == [item.pk]
        assert ids({"q": "ñandú STRASSE"}) == []  # (no casefolding: "ß" is not "ss", as on PostgreSQL)

    def test_list_filters(self, client_for, organizer, other_organizer):
        start = timezone.make_aware(FUTURE)
        a = make_item(organizer, name="Python basics", location="Berlin", category="Tech", start=start)
        b = make_item(other_organizer, name="Yoga", location="Paris", category="fitness",
                      start=start + timedelta(days=10), description="Morning python stretch")
        c = make_item(organizer, name="Private", is_private=True, start=start + timedelta(days=20))

        def ids(query="", user=None):
            response = client_for(user).get(f"/api/v1/items{query}")
            assert response.status_code == 200
            return [i["id"] for i in response.json()]

        assert ids() == [a.pk, b.pk]
        assert ids(f"?organizerId={organizer.pk}") == [a.pk]
        assert ids(f"?organizerId={organizer.pk}", organizer) == [a.pk, c.pk]
        assert ids("?onlyMyItems=true", other_organizer) == [b.pk]
        assert ids("?location=berl") == [a.pk]
        assert ids("?category=tech") == [a.pk]
        assert ids("?q=PYTHON") == [a.pk, b.pk]
        # `q` is words, each in the name or the description, in any order (not one phrase)
        assert ids("?q=basics%20python") == [a.pk]
        assert ids("?q=python%20%20yoga") == [b.pk]
        assert ids("?q=python%20paris") == []
        assert ids(f"?from={local_iso(FUTURE + timedelta(days=5))}") == [b.pk]
        # `from` keeps an item still running at that moment (it overlaps [from, …)): end_time > from
        assert ids(f"?from={local_iso(FUTURE + timedelta(hours=1))}") == [a.pk, b.pk]
        assert ids(f"?from={local_iso(FUTURE + timedelta(hours=2))}") == [b.pk]
        assert ids(f"?to={local_iso(FUTURE + timedelta(days=5))}") == [a.pk]

    @pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "America/St_Johns"])
    def test_a_bare_date_filters_whole_local_days(self, client_for, organizer, settings, zone):
        """`to=2031-09-15` includes that day's items, as the core API's `to` and the revenue
        report's `endDate` include their day (it was that day's midnight: its items were left out)."""
        settings.TIME_ZONE = zone
        early, late = (make_item(organizer, start=timezone.make_aware(datetime(2031, 9, 15, h, m)), hours=0.25)
                       for h, m in ((0, 0), (23, 30)))
        make_item(organizer, start=timezone.make_aware(datetime(2031, 9, 16)))  # the next day
        make_item(organizer, start=timezone.make_aware(datetime(2031, 9, 14, 23, 0)), hours=0.5)  # the day before

        response = client_for().get("/api/v1/items?from=2031-09-15&to=2031-09-15")

        assert [i["id"] for i in response.json()] == [early.pk, late.pk]

    @pytest.mark.parametrize(("zone", "day", "first_instant"), [
        ("America/Santiago", "2026-09-06", "2026-09-06T01:00:00"),  # clocks jump 00:00 → 01:00
        ("America/Havana", "2026-03-08", "2026-03-08T01:00:00"),
    ])
    def test_a_day_whose_midnight_the_zone_skips_starts_when_the_clocks_jump(self, client_for, organizer, settings,
                                                                               zone, day, first_instant):
        """Every day has a start: `from=<that day>` was a 400 ("…T00:00:00 does not exist")."""
        settings.TIME_ZONE = zone
        before = make_item(organizer, start=timezone.make_aware(datetime.fromisoformat(day)) - timedelta(hours=2),
                           hours=1.5)  # ends at 23:30 the day before
        first = client_for(organizer).post("/api/v1/items", item_payload(
            startTime=day, endTime=f"{day}T02:00:00"), format="json")
        assert first.status_code == 201 and first.json()["startTime"] == first_instant

        response = client_for().get(f"/api/v1/items?from={day}")

        assert response.status_code == 200, response.content
        assert [i["id"] for i in response.json()] == [first.json()["id"]]
        assert before.pk in [i["id"] for i in client_for().get(f"/api/v1/items?to={day}").json()]

    def test_filter_times_in_the_repeated_hour_are_the_first_pass_unless_an_offset_says_otherwise(
            self, client_for, organizer, settings):
        """Berlin 2031-10-26: 02:00–03:00 happens twice. `to=02:30:00` is the first 02:30, so an
        item at the second 02:15 (earlier on the wall clock, an instant later) starts after it."""
        settings.TIME_ZONE = "Europe/Berlin"
        first = make_item(organizer, start=datetime(2031, 10, 26, 0, 0, tzinfo=dt_timezone.utc), hours=0.25)
        second = make_item(organizer, start=datetime(2031, 10, 26, 1, 15, tzinfo=dt_timezone.utc), hours=0.25)

        def ids(query):
            response = client_for().get(f"/api/v1/items?{query}")
            assert response.status_code == 200, response.content
            return [i["id"] for i in response.json()]

        assert ids("to=2031-10-26T02:30:00") == [first.pk]
        assert ids("to=2031-10-26T02:30:00%2B01:00") == [first.pk, second.pk]
        assert ids("from=2031-10-26T02:15:00") == [second.pk]  # the first 02:15: `first` ended then
        assert [i["startTime"] for i in client_for().get("/api/v1/items").json()] == [
            "2031-10-26T02:00:00", "2031-10-26T02:15:00+01:00"]

    @pytest.mark.parametrize("query", ["from=2031-09-16&to=2031-09-14", "from=2031-09-15T12:00:00&to=2031-09-15T11:00:00"])
    def test_to_before_from_is_400_like_the_other_windows(self, client_for, query):
        response = client_for().get(f"/api/v1/items?{query}")
        assert response.status_code == 400 and response.json()["fields"] == {"to": ["Must not be before `from`"]}

    def test_opt_in_pagination(self, client_for, organizer):
        for i in range(5):
            make_item(organizer, name=f"I{i}", start=timezone.make_aware(FUTURE) + timedelta(days=i))
        response = client_for().get("/api/v1/items?page=2&pageSize=2")
        assert [i["name"] for i in response.json()] == ["I2", "I3"]
        assert response["X-Total-Count"] == "5" and 'rel="next"' in response["Link"]
        assert len(client_for().get("/api/v1/items").json()) == 5


@pytest.mark.parametrize("tiers", [[None], [{"tier": "A", "price": 5, "maxCapacity": 50}, None]])
def test_a_null_tier_in_the_list_is_400_on_create_and_update(client_for, organizer, tiers):
    client = client_for(organizer)
    created = create(client, priceTiers=tiers)
    assert created.status_code == 400 and "priceTiers" in str(created.json()["fields"])
    item_id = create(client).json()["id"]
    updated = client.put(f"/api/v1/items/{item_id}", {"priceTiers": tiers}, format="json")
    assert updated.status_code == 400 and "priceTiers" in str(updated.json()["fields"])


def test_a_null_tier_list_is_still_a_free_item(client_for, organizer):
    assert create(client_for(organizer), priceTiers=None).json()["priceTiers"] == []


@pytest.mark.parametrize("method", ["head", "options"])
def test_public_reads_answer_head_and_options_like_get(client_for, make_user, organizer, method):
    item = make_item(organizer)
    for caller in (None, make_user()):
        client = client_for(caller)
        for path in ("/api/v1/items", f"/api/v1/items/{item.pk}"):
            assert getattr(client, method)(path).status_code == 200, (caller, path)


class TestUpdateAndDelete:
    def test_update_keeps_omitted_fields_and_replaces_tiers(self, client_for, organizer):
        item_id = create(client_for(organizer)).json()["id"]
        seed_update = {"name": "Updated Spring Boot Workshop", "startTime": "2031-09-20T14:00:00",
                       "endTime": "2031-09-20T16:00:00", "location": "Hybrid - Online & Venue",
                       "capacity": 60, "isPrivate": True,
                       "priceTiers": [{"tier": "Standard", "price": 65.00, "maxCapacity": 60}]}
        body = client_for(organizer).put(f"/api/v1/items/{item_id}", seed_update, format="json").json()
        assert body["description"] == "An interactive workshop on Spring Boot basics."
        assert {k: body[k] for k in seed_update} == {**seed_update, "priceTiers": [
            {"tier": "Standard", "price": 65.0, "maxCapacity": 60}]}
        assert body["currentPrice"] == 65.0
        assert client_for().get(f"/api/v1/items/{item_id}").status_code == 404  # now private

    def test_update_may_not_cut_below_booked(self, make_user, client_for, organizer):
        item = make_item(organizer, capacity=4, tiers=[("A", "5.00", 2), ("B", "9.00", 2)])
        for _ in range(3):
            booking_create(user=make_user(), item_id=item.pk)
        put = client_for(organizer).put
        too_small = put(f"/api/v1/items/{item.pk}", {"capacity": 2, "priceTiers": [
            {"tier": "A", "price": 5, "maxCapacity": 2}]}, format="json")
        assert too_small.status_code == 400 and set(too_small.json()["fields"]) == {"capacity", "priceTiers"}
        tier_cut = put(f"/api/v1/items/{item.pk}", {"priceTiers": [
            {"tier": "A", "price": 5, "maxCapacity": 1}, {"tier": "B", "price": 9, "maxCapacity": 3}]}, format="json")
        assert tier_cut.status_code == 400 and "priceTiers" in tier_cut.json()["fields"]
        sum_wrong = put(f"/api/v1/items/{item.pk}", {"capacity": 6}, format="json")
        assert sum_wrong.status_code == 400 and "priceTiers" in sum_wrong.json()["fields"]
        grown = put(f"/api/v1/items/{item.pk}", {"capacity": 6, "priceTiers": [
            {"tier": "A", "price": 5, "maxCapacity": 2}, {"tier": "B", "price": 12.5, "maxCapacity": 4}]},
            format="json")
        assert grown.status_code == 200
        assert (grown.json()["availableCapacity"], grown.json()["currentPrice"]) == (3, 12.5)

    def test_an_item_with_booked_seats_cannot_be_moved_into_the_past(self, make_user, client_for, organizer):
        """Its bookings would start in the past: no longer cancellable by their owners ("already
        started") and counted as revenue, by the organizer's edit alone."""
        item = make_item(organizer, capacity=4)
        booking = booking_create(user=make_user(), item_id=item.pk)
        put = client_for(organizer).put
        past = {"startTime": local_iso(timezone.now() - timedelta(days=2)),
                "endTime": local_iso(timezone.now() - timedelta(days=2) + timedelta(hours=2))}
        moved = put(f"/api/v1/items/{item.pk}", past, format="json")
        assert moved.status_code == 400 and moved.json()["fields"] == {
            "startTime": ["Cannot move the start into the past while 1 seats are booked"]}
        booking.refresh_from_db()
        assert booking.start_time == item.start_time
        later = {"startTime": local_iso(item.start_time + timedelta(days=1)),
                 "endTime": local_iso(item.end_time + timedelta(days=1))}
        assert put(f"/api/v1/items/{item.pk}", later, format="json").status_code == 200
        empty = make_item(organizer, capacity=4)  # no seats held: a historical record may be made of it
        assert put(f"/api/v1/items/{empty.pk}", past, format="json").status_code == 200

    def test_capacity_may_be_cut_down_to_exactly_what_is_booked(self, make_user, client_for, organizer):
        item = make_item(organizer, capacity=4)
        for _ in range(3):
            booking_create(user=make_user(), item_id=item.pk)
        cut = client_for(organizer).put(f"/api/v1/items/{item.pk}", {"capacity": 3}, format="json")
        assert cut.status_code == 200, cut.content
        assert (cut.json()["capacity"], cut.json()["availableCapacity"]) == (3, 0)

    def test_reordered_tiers_are_sold_in_their_new_order(self, make_user, client_for, organizer):
        """Tiers are matched by name (their counters stay) and sold in the order last sent."""
        item = make_item(organizer, capacity=4, tiers=[("A", "5.00", 2), ("B", "9.00", 2)])
        booking_create(user=make_user(), item_id=item.pk)
        reordered = client_for(organizer).put(f"/api/v1/items/{item.pk}", {"priceTiers": [
            {"tier": "B", "price": 9, "maxCapacity": 2}, {"tier": "A", "price": 5, "maxCapacity": 2}]}, format="json")
        assert [t["tier"] for t in reordered.json()["priceTiers"]] == ["B", "A"]
        assert reordered.json()["currentPrice"] == 9.0
        assert [t["tier"] for t in client_for().get(f"/api/v1/items/{item.pk}").json()["priceTiers"]] == ["B", "A"]
        assert booking_create(user=make_user(), item_id=item.pk).tier.name == "B"

    def test_a_free_item_with_bookings_cannot_get_price_tiers(self, make_user, client_for, organizer):
        """Its bookings hold no tier, so tier counters could not account for their seats (a
        later booking naming a tier was answered 503 'busy' forever)."""
        item = make_item(organizer, capacity=2, tiers=[])
        booking_create(user=make_user(), item_id=item.pk)
        response = client_for(organizer).put(f"/api/v1/items/{item.pk}", {"priceTiers": [
            {"tier": "A", "price": 5, "maxCapacity": 2}]}, format="json")
        assert response.status_code == 400 and response.json()["fields"] == {
            "priceTiers": ["Cannot add price tiers while seats are booked without a tier (1)"]}
        item.refresh_from_db()
        assert not item.tiers.exists()

    def test_naming_a_tier_on_a_full_item_is_400_capacity_exceeded(self, make_user, client_for, organizer):
        """Counters out of step (data from before the rule above): still a clear 400, not a 503."""
        item = make_item(organizer, capacity=2, tiers=[("A", "5.00", 2)])
        BookableItem.objects.filter(pk=item.pk).update(sold=2)
        response = client_for(make_user()).post(f"/api/v1/bookings/items/{item.pk}", {"priceTier": "A"},
                                                format="json")
        assert response.status_code == 400 and response.json()["message"] == "Capacity exceeded"

    def test_moving_an_item_onto_a_bookers_other_booking_is_409(self, make_user, client_for, organizer):
        first = make_item(organizer, name="First")
        second = make_item(organizer, name="Second", start=first.end_time)
        booker = make_user()
        booking_create(user=booker, item_id=first.pk)
        booking_create(user=booker, item_id=second.pk)
        moved = client_for(organizer).put(f"/api/v1/items/{second.pk}",
                                          {"startTime": local_iso(FUTURE + timedelta(hours=1))}, format="json")
        assert moved.status_code == 409

    def test_delete_is_soft_and_cancels_bookings(self, make_user, client_for, organizer):
        item = make_item(organizer, capacity=3)
        bookings = [booking_create(user=make_user(), item_id=item.pk) for _ in range(2)]
        assert client_for(organizer).delete(f"/api/v1/items/{item.pk}").status_code == 204
        assert client_for(organizer).get(f"/api/v1/items/{item.pk}").status_code == 404
        assert client_for(organizer).delete(f"/api/v1/items/{item.pk}").status_code == 404
        item.refresh_from_db()
        assert item.deleted_at is not None and item.sold == 0
        assert {b.__class__.objects.get(pk=b.pk).status for b in bookings} == {"CANCELLED"}
        assert OutboxEvent.objects.filter(event_type="BOOKING_CANCELLED").count() == 2
        # An audit entry: who deleted what, and what it cancelled (GET /logs?eventType=ITEM).
        entry = SystemLog.objects.get(event_type="ITEM")
        assert (entry.message, entry.severity, entry.user_id, entry.reported_by_id) == (
            "Item deleted", "warning", str(organizer.pk), organizer.pk)
        assert entry.additional_data == {"itemId": item.pk, "name": item.name, "by": organizer.pk,
                                         "cancelledBookings": 2}
        assert entry.ip_address == "127.0.0.1"


    def test_deleting_an_item_that_already_started_keeps_its_bookings(self, make_user, client_for, organizer, admin):
        """Bookings of a started item are history (and revenue): the soft delete leaves them
        CONFIRMED, notifies nobody and keeps the seats and the revenue."""
        item = make_item(organizer, capacity=3, tiers=[("Std", "25.00", 3)])
        bookings = [booking_create(user=make_user(), item_id=item.pk) for _ in range(2)]
        started = timezone.now() - timedelta(minutes=30)
        BookableItem.objects.filter(pk=item.pk).update(start_time=started, end_time=started + timedelta(hours=2))
        Booking.objects.filter(item=item).update(start_time=started, end_time=started + timedelta(hours=2))
        events_before = OutboxEvent.objects.filter(event_type="BOOKING_CANCELLED").count()

        assert client_for(organizer).delete(f"/api/v1/items/{item.pk}").status_code == 204

        item.refresh_from_db()
        assert item.deleted_at is not None and item.sold == 2
        assert {Booking.objects.get(pk=b.pk).status for b in bookings} == {"CONFIRMED"}
        assert OutboxEvent.objects.filter(event_type="BOOKING_CANCELLED").count() == events_before == 0
        report = client_for(admin).get("/api/v1/reports/revenue").json()
        assert report["totalRevenue"] == 50.0

class TestQueryCounts:
    @staticmethod
    def count_list(client, query=""):
        return list_cost(client, f"/api/v1/items{query}")

    def test_item_list_costs_the_same_for_1_and_100_items(self, make_user, client_for, organizer):
        make_item(organizer, tiers=[("A", "1.00", 5), ("B", "2.00", 5)])
        client = client_for(organizer)
        one = self.count_list(client)
        one_paged = self.count_list(client, "?page=1&pageSize=100")
        for i in range(99):
            item = make_item(organizer, name=f"I{i}", tiers=[("A", "1.00", 5), ("B", "2.00", 5)])
            if i % 10 == 0:
                booking_create(user=make_user(), item_id=item.pk)
        assert self.count_list(client) == (one[0], 100)
        assert self.count_list(client, "?page=1&pageSize=100") == (one_paged[0], 100)
        assert one[0] <= 4  # auth user + owns-a-private-item check (cache scope) + items + tiers


def test_null_optional_texts_and_tags_mean_empty(client_for, make_user):
    body = {"name": "Talk", "startTime": "2031-09-15T10:00:00", "endTime": "2031-09-15T12:00:00", "capacity": 5,
            "description": None, "location": None, "tags": None, "category": None, "priceTiers": None}
    organizer = client_for(make_user(roles=["EVENT_ORGANIZER"]))
    created = organizer.post("/api/v1/items", body, format="json")
    assert created.status_code == 201, created.content
    item = created.json()
    assert (item["description"], item["location"], item["tags"], item["category"]) == ("", "", [], None)
    organizer.put(f"/api/v1/items/{item['id']}", {"description": "x", "location": "y", "tags": ["t"]}, format="json")
    cleared = organizer.put(f"/api/v1/items/{item['id']}", {"description": None, "location": None, "tags": None},
                            format="json").json()
    assert (cleared["description"], cleared["location"], cleared["tags"]) == ("", "", [])
    priced = organizer.put(f"/api/v1/items/{item['id']}", {"priceTiers": [{"tier": "A", "price": 9.5, "maxCapacity": 5}]},
                           format="json").json()
    assert priced["currentPrice"] == 9.5
    freed = organizer.put(f"/api/v1/items/{item['id']}", {"priceTiers": None}, format="json").json()
    assert (freed["priceTiers"], freed["currentPrice"]) == ([], 0)  # null = no tiers, as on create


def test_an_organizer_holds_a_bounded_number_of_upcoming_items_an_admin_does_not(client_for, make_user, settings):
    from django.utils import timezone

    from catalog.models import BookableItem

    settings.MAX_UPCOMING_ITEMS_PER_ORGANIZER = 2
    organizer, admin = make_user(roles=["EVENT_ORGANIZER"]), make_user(roles=["ADMIN"])
    body = {"name": "Talk", "startTime": "2031-09-15T10:00:00", "endTime": "2031-09-15T12:00:00", "capacity": 5}
    post = lambda user: client_for(user).post("/api/v1/items", body, format="json")  # noqa: E731
    first, _ = post(organizer), post(organizer)
    refused = post(organizer)
    assert refused.status_code == 409 and "upcoming items" in refused.json()["message"]
    BookableItem.objects.filter(pk=first.json()["id"]).update(deleted_at=timezone.now())  # a deleted one frees a place
    assert post(organizer).status_code == 201
    assert [post(admin).status_code for _ in range(3)] == [201] * 3
    past = {**body, "startTime": "2020-01-01T10:00:00", "endTime": "2020-01-01T12:00:00"}
    historical = client_for(organizer).post("/api/v1/items", past, format="json")
    assert historical.status_code == 201  # a past item (a historical record) holds no place
    moved = client_for(organizer).put(f"/api/v1/items/{historical.json()['id']}",
                                      {"startTime": "2031-10-01T10:00:00", "endTime": "2031-10-01T12:00:00"},
                                      format="json")
    assert moved.status_code == 409  # ... until it is moved back into the future


class TestConditionalList:
    """GET /items carries an ETag; If-None-Match with it is a 304 without the (large) body, until
    anything in the list changes — for this caller's view of it."""

    def test_an_unchanged_list_is_a_304_and_a_change_a_200_with_a_new_etag(self, api_client, organizer,
                                                                             make_user):
        from reservations.services import booking_create

        item = make_item(organizer, capacity=3, tiers=[("A", "10.00", 3)])
        first = api_client.get("/api/v1/items")
        etag = first["ETag"]
        assert first.status_code == 200 and etag.startswith('"') and len(etag) == 34
        assert first["Cache-Control"] == "private, no-cache" and "Authorization" in first["Vary"]

        again = api_client.get("/api/v1/items", HTTP_IF_NONE_MATCH=etag)
        assert (again.status_code, again.content, again["ETag"]) == (304, b"", etag)

        booking_create(user=make_user(), item_id=item.pk)  # availableCapacity changes
        changed = api_client.get("/api/v1/items", HTTP_IF_NONE_MATCH=etag)
        assert changed.status_code == 200 and changed["ETag"] != etag
        assert changed.json()[0]["availableCapacity"] == 2

    @pytest.mark.parametrize("header", ['W/{etag}', '"other", {etag}', "*"])
    def test_if_none_match_forms(self, api_client, organizer, header):
        make_item(organizer)
        etag = api_client.get("/api/v1/items")["ETag"]
        assert api_client.get("/api/v1/items", HTTP_IF_NONE_MATCH=header.format(etag=etag)).status_code == 304
        assert api_client.get("/api/v1/items", HTTP_IF_NONE_MATCH='"other"').status_code == 200

    def test_one_callers_etag_does_not_fit_another_callers_list(self, api_client, client_for, organizer):
        make_item(organizer, name="Public")
        make_item(organizer, name="Secret", is_private=True)
        own = client_for(organizer).get("/api/v1/items")
        public = api_client.get("/api/v1/items", HTTP_IF_NONE_MATCH=own["ETag"])
        assert public.status_code == 200 and [i["name"] for i in public.json()] == ["Public"]
        assert public["ETag"] != own["ETag"]

    def test_a_page_whose_total_changed_is_not_a_304(self, api_client, organizer):
        start = make_item(organizer, name="First").start_time
        page = api_client.get("/api/v1/items?page=1&pageSize=1")
        make_item(organizer, name="Later", start=start + timedelta(days=1))  # same first page, one more row
        again = api_client.get("/api/v1/items?page=1&pageSize=1", HTTP_IF_NONE_MATCH=page["ETag"])
        assert again.status_code == 200 and again["X-Total-Count"] == "2"
        assert [i["name"] for i in again.json()] == ["First"]


def test_an_item_in_progress_still_holds_a_place_under_the_organizer_limit(client_for, make_user, settings):
    """The limit counts items that have not ended, not only those that have not started."""
    settings.MAX_UPCOMING_ITEMS_PER_ORGANIZER = 1
    organizer = make_user(roles=["EVENT_ORGANIZER"])
    make_item(organizer, start=timezone.now() - timedelta(hours=1), hours=2)  # ends in an hour
    body = {"name": "Talk", "startTime": "2031-09-15T10:00:00", "endTime": "2031-09-15T12:00:00", "capacity": 5}
    assert client_for(organizer).post("/api/v1/items", body, format="json").status_code == 409


def test_a_blank_category_is_stored_as_none_on_update_as_on_create(client_for, organizer):
    created = create(client_for(organizer), category="").json()
    assert created["category"] is None
    make_tech = client_for(organizer).put(f"/api/v1/items/{created['id']}", {"category": "Tech"}, format="json")
    assert make_tech.json()["category"] == "Tech"
    cleared = client_for(organizer).put(f"/api/v1/items/{created['id']}", {"category": ""}, format="json")
    assert cleared.json()["category"] is None
    assert BookableItem.objects.get(pk=created["id"]).category is None


def test_a_deactivated_organizers_items_stay_listed_bookable_and_managed_by_admins(
        client_for, organizer, customer, admin, make_user):
    """DECISIONS: deactivation ends a person's access, not the events they set up."""
    item = make_item(organizer, capacity=5)
    held = booking_create(user=customer, item_id=item.pk)
    assert client_for(admin).delete(f"/api/v1/user/{organizer.pk}").status_code == 204

    assert client_for(organizer).get("/api/v1/items").status_code == 401  # the person is out
    assert [row["id"] for row in client_for().get("/api/v1/items").json()] == [item.pk]
    booked = client_for(make_user(username="late_booker")).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json")
    assert booked.status_code == 201, booked.json()
    held.refresh_from_db()
    assert held.status == "CONFIRMED"
    renamed = client_for(admin).put(f"/api/v1/items/{item.pk}", item_payload(capacity=5, priceTiers=[], name="Taken over"),
                                    format="json")
    assert renamed.status_code == 200 and renamed.json()["organizerId"] == organizer.pk, renamed.json()
