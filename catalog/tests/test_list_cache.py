"""The Redis-cached item list: served from cache, invalidated by every committed change,
never mixing visibility scopes, computed fresh when Redis is unreachable."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog import cache as catalog_cache
from catalog.services import item_update
from catalog.tests.factories import make_item
from ops.models import OutboxEvent
from reservations.services import booking_cancel, booking_create

# Real commits: the version bump runs on commit.
pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _cache_on(settings):
    settings.CATALOG_CACHE_TTL = 300


def listing(client, query=""):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"/api/v1/items{query}")
    assert response.status_code == 200
    return response, len(ctx.captured_queries)


def test_second_request_is_served_from_cache_and_changes_invalidate_it(
        api_client, organizer, make_user):
    item = make_item(organizer, name="Cached", capacity=3, tiers=[("A", "10.00", 1), ("B", "20.00", 2)])
    first, first_queries = listing(api_client)
    second, second_queries = listing(api_client)
    assert first.content == second.content and first_queries > 0 and second_queries == 0

    booking = booking_create(user=make_user(), item_id=item.pk)
    [after_booking] = listing(api_client)[0].json()
    assert (after_booking["availableCapacity"], after_booking["currentPrice"]) == (2, 20.0)

    booking_cancel(actor=booking.user, booking_id=booking.pk)
    [after_cancel] = listing(api_client)[0].json()
    assert (after_cancel["availableCapacity"], after_cancel["currentPrice"]) == (3, 10.0)

    item_update(actor=organizer, item_id=item.pk, name="Renamed")
    assert listing(api_client)[0].json()[0]["name"] == "Renamed"


def test_private_items_never_leak_through_the_cache(api_client, client_for, organizer, make_user):
    make_item(organizer, name="Public")
    make_item(organizer, name="Secret", is_private=True)
    own = client_for(organizer).get("/api/v1/items").json()
    admin = client_for(make_user(roles=["ADMIN"])).get("/api/v1/items").json()
    for client in (api_client, client_for(make_user()), client_for(make_user(roles=["EVENT_ORGANIZER"]))):
        assert [i["name"] for i in client.get("/api/v1/items").json()] == ["Public"]
    assert sorted(i["name"] for i in own) == sorted(i["name"] for i in admin) == ["Public", "Secret"]


def test_paged_lists_are_cached_with_their_headers(api_client, organizer):
    for n in range(5):
        make_item(organizer, name=f"I{n}")
    first, _ = listing(api_client, "?page=2&pageSize=2")
    second, queries = listing(api_client, "?page=2&pageSize=2")
    assert queries == 0 and second.json() == first.json() and len(second.json()) == 2
    assert second["X-Total-Count"] == "5" and 'rel="next"' in second["Link"]


def test_unreachable_redis_computes_fresh_and_a_failed_bump_goes_through_the_outbox(
        api_client, organizer, monkeypatch):
    import redis as redis_lib

    broken = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr("django_redis.get_redis_connection", lambda alias: broken)
    make_item(organizer, name="While Redis is down")
    response, queries = listing(api_client)
    assert [i["name"] for i in response.json()] == ["While Redis is down"] and queries > 0
    assert OutboxEvent.objects.filter(event_type=catalog_cache.CACHE_BUMP_EVENT).count() == 1


def test_redis_losing_its_data_never_brings_back_an_old_list(api_client, organizer):
    """Web processes keep the last lists they served, by version: a version must never be
    reused, not even after Redis restarts empty (a counter would start again at 1)."""
    from django_redis import get_redis_connection

    item = make_item(organizer, name="Before")
    assert [i["name"] for i in listing(api_client)[0].json()] == ["Before"]
    get_redis_connection("default").flushdb()  # Redis restarted without its data

    item_update(actor=organizer, item_id=item.pk, name="After")

    assert [i["name"] for i in listing(api_client)[0].json()] == ["After"]
    assert [i["name"] for i in listing(api_client)[0].json()] == ["After"]


def test_while_redis_rests_lists_skip_it_but_the_version_bump_still_tries(api_client, organizer, make_user,
                                                                          monkeypatch):
    """After a Redis failure (bookings_project.cache), lists are computed fresh and the nudge is
    skipped, without a call to Redis (each would wait out its socket timeout on a hung Redis).
    The version bump still tries, once per commit: skipped, other processes — which Redis may
    answer again already — would serve a list older than the change. It fails to the outbox."""
    import bookings_project.cache as shared

    calls = []

    class Hung:
        def __getattr__(self, name):
            def call(*args, **kwargs):
                calls.append(name)
                raise TimeoutError("Timeout reading from socket")

            return call

    monkeypatch.setattr("django_redis.get_redis_connection", lambda alias: Hung())
    item = make_item(organizer, name="While Redis rests", capacity=5)  # the first bump fails: rest
    assert calls and shared.redis_resting()
    calls.clear()
    booking_create(user=make_user(), item_id=item.pk)
    assert calls == ["set"]  # the bump, and nothing else
    calls.clear()
    response, queries = listing(api_client)
    assert [i["name"] for i in response.json()] == ["While Redis rests"] and queries > 0
    assert calls == []
    assert OutboxEvent.objects.filter(event_type=catalog_cache.CACHE_BUMP_EVENT).count() == 2


def test_a_list_cached_in_another_time_zone_is_not_served(api_client, organizer, settings):
    """The list is rendered in TIME_ZONE (local times without offset): after a restart with
    another TIME_ZONE — or from a process still running with the old one, sharing the Redis —
    a list rendered in the old zone would show every time shifted, with no offset to tell."""
    settings.TIME_ZONE = "UTC"
    make_item(organizer, name="Zoned")  # 2031-09-15T10:00:00 UTC
    assert listing(api_client)[0].json()[0]["startTime"] == "2031-09-15T10:00:00"
    settings.TIME_ZONE = "Europe/Berlin"
    assert listing(api_client)[0].json()[0]["startTime"] == "2031-09-15T12:00:00"
    settings.TIME_ZONE = "UTC"
    assert listing(api_client)[0].json()[0]["startTime"] == "2031-09-15T10:00:00"


def test_a_cached_list_answers_if_none_match_with_a_304_and_no_query(api_client, organizer, make_user):
    item = make_item(organizer, capacity=3)
    first, _ = listing(api_client)
    with CaptureQueriesContext(connection) as ctx:
        again = api_client.get("/api/v1/items", HTTP_IF_NONE_MATCH=first["ETag"])
    assert (again.status_code, len(ctx.captured_queries)) == (304, 0)
    catalog_cache._local.lists.clear()  # another process: the ETag comes with the Redis copy
    assert api_client.get("/api/v1/items", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304

    booking_create(user=make_user(), item_id=item.pk)  # committed: the version moves on
    changed = api_client.get("/api/v1/items", HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]
