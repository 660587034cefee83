"""GET /api/v1/recommendations/users/me through HTTP: the seed's scenario, what is never
recommended, limit, cold start, reasons and a constant number of queries."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bookings_project.testing import REVOKED_CALLERS
from bookings_project.tests.helpers import queries_during
from catalog.services import item_delete
from catalog.tests.factories import make_item
from reservations.models import Booking
from reservations.services import booking_cancel
from reservations.tests.factories import book

from .factories import item_at

pytestmark = pytest.mark.django_db
URL = "/api/v1/recommendations/users/me"


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["name"] for item in response.json()]


@pytest.fixture
def seed_items(organizer, other_organizer):
    """The seed's scenario: two tech workshops by organizer1, a fitness class by organizer2."""
    tech = dict(category="Tech", tags=["python", "programming"], location="Room 1")
    return {
        "tech": item_at(organizer, 1, name="Tech Workshop",
                        description="Hands-on Python programming workshop.", **tech),
        "fitness": item_at(other_organizer, 2, name="Fitness Class",
                           description="Cardio and strength training.", category="Sport", tags=["fitness"],
                           location="Gym"),
        "another": item_at(organizer, 3, name="Another Tech Workshop",
                           description="More Python programming, advanced topics.", **tech),
    }


def test_seed_scenario_ranks_same_organizer_and_category_first(customer, client_for, seed_items):
    book(customer, seed_items["tech"])

    response = client_for(customer).get(URL)

    assert names(response) == ["Another Tech Workshop", "Fitness Class"]
    top = response.json()[0]
    assert top["id"] == seed_items["another"].pk
    assert "Same organizer as 'Tech Workshop'" in top["reason"]
    assert "shares tags: programming, python" in top["reason"]
    assert "Same category: Tech".lower() in top["reason"].lower()
    assert response.json()[1]["reason"]
    # The item shape is BookableItemResponse plus reason.
    assert {"currentPrice", "availableCapacity", "priceTiers", "organizerUsername", "tags"} <= set(top)


def test_history_changes_the_ranking(customer, client_for, seed_items, other_organizer):
    later_gym = item_at(other_organizer, 4, name="Evening Fitness", description="Strength training.",
                        category="Sport", tags=["fitness"], location="Gym")
    book(customer, seed_items["fitness"])

    assert names(client_for(customer).get(URL))[0] == later_gym.name


def test_completed_bookings_count_and_cancelled_do_not(customer, client_for, seed_items, admin):
    tech = book(customer, seed_items["tech"])
    booking_cancel(actor=customer, booking_id=tech.pk)
    cold = client_for(customer).get(URL).json()
    assert "Tech Workshop" in [i["name"] for i in cold]  # a cancelled booking neither profiles nor excludes
    reasons = {i["name"]: i["reason"] for i in cold}
    assert not any("same category" in r.lower() or "same organizer" in r.lower() for r in reasons.values()), reasons

    book(customer, seed_items["fitness"], status="COMPLETED", actor=admin)
    ranked = names(client_for(customer).get(URL))
    assert "Fitness Class" not in ranked


def test_never_recommends_booked_private_past_deleted_or_full_items(
        customer, make_user, client_for, seed_items, organizer, admin):
    book(customer, seed_items["tech"])
    make_item(organizer, name="Private Tech Workshop", start=timezone.now() + timedelta(days=400),
              is_private=True, category="Tech", tags=["python"])
    make_item(organizer, name="Past Tech Workshop", start=timezone.now() - timedelta(days=3),
              category="Tech", tags=["python"])
    deleted = item_at(organizer, 5, name="Deleted Tech Workshop", category="Tech", tags=["python"])
    item_delete(actor=admin, item_id=deleted.pk)
    full = item_at(organizer, 6, name="Full Tech Workshop", capacity=1, category="Tech", tags=["python"])
    book(make_user(), full)
    item_at(customer, 7, name="My Own Tech Workshop", category="Tech", tags=["python"])

    ranked = names(client_for(customer).get(URL, {"limit": 50}))

    assert ranked == ["Another Tech Workshop", "Fitness Class"]


def test_an_item_held_pending_is_not_recommended(customer, client_for, seed_items):
    """A PENDING booking holds the item (it is the user's, awaiting confirmation): not
    recommended back to them, though it does not shape the profile yet."""
    pending = book(customer, seed_items["tech"])
    Booking.objects.filter(pk=pending.pk).update(status="PENDING")

    ranked = names(client_for(customer).get(URL, {"limit": 50}))

    assert "Tech Workshop" not in ranked
    assert sorted(ranked) == ["Another Tech Workshop", "Fitness Class"]


def test_the_most_recent_booking_weighs_most_through_the_api(customer, client_for, organizer, other_organizer):
    """Two symmetric interests, booked a month apart: the item like the RECENT booking ranks
    first, and reasons name the most recent booked item (history read newest first)."""
    now = timezone.now()
    old = item_at(other_organizer, 1, name="Yoga Morning", category="Sport", tags=["fitness"], location="Gym")
    recent = item_at(organizer, 2, name="Python Intro", category="Tech", tags=["python"], location="Room 1")
    item_at(other_organizer, 3, name="Yoga Evening", category="Sport", tags=["fitness"], location="Gym")
    item_at(organizer, 4, name="Python Advanced", category="Tech", tags=["python"], location="Room 1")
    book(customer, old, booked_at=now - timedelta(days=30))
    book(customer, recent, booked_at=now - timedelta(days=1))

    response = client_for(customer).get(URL)

    assert names(response) == ["Python Advanced", "Yoga Evening"]
    assert "Same organizer as 'Python Intro'" in response.json()[0]["reason"]

def test_limit_is_respected(customer, client_for, organizer):
    for day in range(8):
        item_at(organizer, day, name=f"Item {day}")
    client = client_for(customer)

    assert len(names(client.get(URL))) == 5
    assert len(names(client.get(URL, {"limit": 2}))) == 2
    assert len(names(client.get(URL, {"limit": 50}))) == 8


def test_page_and_page_size_page_the_recommendations_like_every_booking_api_list(customer, client_for, organizer):
    for day in range(8):
        item_at(organizer, day, name=f"Item {day}")
    client = client_for(customer)
    everything = names(client.get(URL, {"limit": 7}))

    second = client.get(URL, {"limit": 7, "page": 2, "pageSize": 3})
    assert names(second) == everything[3:6]
    assert second["X-Total-Count"] == "7" and 'rel="next"' in second["Link"] and 'rel="prev"' in second["Link"]
    assert "X-Total-Count" not in client.get(URL)
    assert client.get(URL, {"pageSize": 0}).status_code == 400


@pytest.mark.parametrize("limit", ["0", "51", "abc", "-1", "2.5"])
def test_invalid_limit_is_400(customer, client_for, limit):
    response = client_for(customer).get(URL, {"limit": limit})
    assert response.status_code == 400
    assert "limit" in response.json()["fields"]


@pytest.mark.parametrize("caller", ["anonymous", *REVOKED_CALLERS])  # (revoked: an ADMIN's token)
def test_anonymous_or_a_revoked_token_is_401(api_client, revoked_client_for, caller):
    client = api_client if caller == "anonymous" else revoked_client_for(caller)
    response = client.get(URL)
    assert response.status_code == 401 and response.json()["status"] == 401


@pytest.mark.parametrize("roles", [["USER"], ["EVENT_ORGANIZER"], ["IT_OPERATOR"], ["ADMIN"], ["USER", "IT_OPERATOR"],
                                   ["EVENT_ORGANIZER", "IT_OPERATOR"]])
def test_every_signed_in_role_gets_recommendations(make_user, client_for, organizer, roles):
    item_at(organizer, 1, name="Upcoming")
    assert names(client_for(make_user(roles=roles)).get(URL)) == ["Upcoming"]


def test_cold_start_returns_most_booked_upcoming_items(customer, make_user, client_for, organizer):
    quiet = item_at(organizer, 1, name="Quiet")
    busy = item_at(organizer, 2, name="Busy")
    medium = item_at(organizer, 3, name="Medium")
    also_medium = item_at(organizer, 4, name="Also Medium")
    fans = [make_user() for _ in range(3)]
    for fan in fans:
        book(fan, busy)
    for fan in fans[:2]:
        book(fan, also_medium)
        book(fan, medium)

    response = client_for(customer).get(URL)

    assert names(response) == ["Busy", "Medium", "Also Medium", "Quiet"]  # ties by start time
    assert response.json()[0]["reason"] == "Popular: 3 bookings"
    assert quiet.pk == response.json()[3]["id"]


def test_cold_start_finds_the_most_booked_items_beyond_the_next_few(customer, make_user, client_for, organizer):
    """The most-booked upcoming items, not the most-booked of the next `limit` to start."""
    for day in range(3):
        item_at(organizer, day, name=f"Quiet {day}")
    busy = item_at(organizer, 10, name="Busy")
    for _ in range(2):
        book(make_user(), busy)

    assert names(client_for(customer).get(URL, {"limit": 2})) == ["Busy", "Quiet 0"]


def test_a_deleted_item_takes_no_place_in_the_list(customer, client_for, seed_items, admin, organizer):
    """It would have ranked first; the next match is recommended instead, not a shorter list."""
    book(customer, seed_items["tech"])
    deleted = item_at(organizer, 2.5, name="Deleted Tech Workshop", description="Python programming.",
                      category="Tech", tags=["python", "programming"], location="Room 1")
    item_delete(actor=admin, item_id=deleted.pk)

    assert names(client_for(customer).get(URL, {"limit": 1})) == ["Another Tech Workshop"]


def test_ties_are_broken_by_start_time(customer, client_for, organizer, other_organizer):
    booked = item_at(organizer, 1, name="Booked", category="Tech")
    later = item_at(other_organizer, 9, name="Later")
    sooner = item_at(other_organizer, 8, name="Sooner")
    book(customer, booked)

    assert names(client_for(customer).get(URL)) == [sooner.name, later.name]


def _queries_for_recommendations(client_for, user, organizer, *, items: int, bookings: int, first_day: int) -> int:
    for n in range(bookings):
        book(user, item_at(organizer, first_day + n, name=f"Python workshop {n}", category="Tech",
                           tags=["python"]))
    for n in range(items):
        item_at(organizer, first_day + bookings + n, name=f"Data workshop {n}", description="Python and data",
                category="Tech", tags=["python", "data"])
    client = client_for(user)
    responses = []
    count = queries_during(lambda: responses.append(client.get(URL, {"limit": 50})))
    assert responses[0].status_code == 200 and len(responses[0].json()) >= 3
    return count


def test_query_count_does_not_grow_with_items_or_bookings(make_user, client_for, organizer, settings):
    settings.MAX_ACTIVE_BOOKINGS_PER_USER = 100  # one user books 50 items here
    small = _queries_for_recommendations(client_for, make_user(), organizer, items=3, bookings=5, first_day=0)
    large = _queries_for_recommendations(client_for, make_user(), organizer, items=30, bookings=50,
                                         first_day=100)
    cold = _queries_for_recommendations(client_for, make_user(), organizer, items=30, bookings=0, first_day=300)
    assert small == large <= 7  # caller, history, next candidates, matching candidates, items, tiers
    assert cold == small - 1  # cold start: no history to match


def test_a_match_is_scored_however_many_unrelated_items_start_sooner(customer, client_for, organizer,
                                                                      other_organizer, monkeypatch):
    from reporting import selectors

    monkeypatch.setattr(selectors, "CANDIDATE_CAP", 5)  # the next 5 by start time: all unrelated
    book(customer, item_at(organizer, 0, name="Tech Workshop", category="Tech", location="Room A"))
    for n in range(8):
        item_at(other_organizer, 1 + n, name=f"Filler {n}", category="Other", location="Elsewhere")
    item_at(organizer, 30, name="Another Tech Workshop", category="tech", location="Room A")

    response = client_for(customer).get(URL)

    assert names(response)[0] == "Another Tech Workshop"
    assert response.json()[0]["reason"].startswith("Same organizer")


@pytest.mark.parametrize(("category", "location"), [("TECH", "Elsewhere"), (None, "room a")])
def test_a_match_by_category_or_location_alone_is_scored_however_many_items_start_sooner(
        customer, client_for, organizer, other_organizer, make_user, monkeypatch, category, location):
    """Another organizer's item sharing only the category, or only the location (in another
    case: they match case-insensitively, as the scores compare them)."""
    from reporting import selectors

    monkeypatch.setattr(selectors, "CANDIDATE_CAP", 5)  # the next 5 by start time: all unrelated
    book(customer, item_at(organizer, 0, name="Tech Workshop", category="Tech", location="Room A"))
    for n in range(8):
        item_at(other_organizer, 1 + n, name=f"Filler {n}", category="Other", location="Elsewhere")
    item_at(make_user(roles=["EVENT_ORGANIZER"]), 30, name="Match", category=category, location=location)

    assert names(client_for(customer).get(URL))[0] == "Match"


@pytest.mark.parametrize(("field", "booked", "candidate"), [
    ("location", "Großer Saal", "Großer Saal"), ("location", "Großer Saal", "GROSSER SAAL"),
    ("category", "Straßenfest", "Straßenfest"), ("location", "Room  A", "room a")])
def test_a_match_whose_text_lower_and_casefold_disagree_on_is_still_found(
        customer, client_for, organizer, other_organizer, make_user, monkeypatch, field, booked, candidate):
    """The scores compare casefolded, whitespace-collapsed texts ("ß" folds to "ss"); the
    matching query must find what they would score, not only what the database's lower() equals."""
    from reporting import selectors

    monkeypatch.setattr(selectors, "CANDIDATE_CAP", 5)
    book(customer, item_at(organizer, 0, name="Fest", **{field: booked}))
    for n in range(8):
        item_at(other_organizer, 1 + n, name=f"Filler {n}", category="Other", location="Elsewhere")
    item_at(make_user(roles=["EVENT_ORGANIZER"]), 30, name="Match", **{field: candidate})

    assert names(client_for(customer).get(URL))[0] == "Match"


def test_only_the_head_of_a_long_description_is_read(customer, client_for, organizer):
    from reporting.selectors import TEXT_CHARS, recommendation_candidates
    from django.utils import timezone

    item_at(organizer, 3, name="Long", description="word " * 5_000)
    [candidate] = recommendation_candidates(user=customer, now=timezone.now())
    assert len(candidate.description) == TEXT_CHARS
