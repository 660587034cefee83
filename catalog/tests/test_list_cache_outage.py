"""The item-list cache while Redis fails (no Redis needed: a stand-in client): lists are computed
fresh, and the outage is logged once, not once per request."""

import pytest

from catalog import cache as catalog_cache


class FlakyRedis:
    """The calls cached_list makes, failing like a hung Redis while `down`."""

    def __init__(self):
        self.down, self.data = True, {}

    def get(self, key):
        if self.down:
            raise TimeoutError("Timeout reading from socket")
        return self.data.get(key)

    def set(self, key, value, nx=False, **kwargs):
        if self.down:
            raise TimeoutError("Timeout reading from socket")
        if not (nx and key in self.data):
            self.data[key] = value


def test_an_outage_is_logged_once_and_its_end_once(monkeypatch, caplog):
    redis, computed = FlakyRedis(), []
    monkeypatch.setattr(catalog_cache, "_redis", lambda: redis)

    def compute():
        computed.append(1)
        return 1, b"[]"

    with caplog.at_level("WARNING", logger="catalog.cache"):
        for _ in range(3):
            assert catalog_cache.cached_list(("outage",), compute)[:2] == (1, b"[]")
        redis.down = False
        for _ in range(2):
            assert catalog_cache.cached_list(("outage",), compute)[:2] == (1, b"[]")

    assert len(computed) == 4  # each request of the outage, then once into the cache
    assert [r.getMessage() for r in caplog.records if r.name == "catalog.cache"] == [
        "Item list cache: Redis unreachable (Timeout reading from socket); computing lists fresh",
        "Item list cache: Redis reachable again"]


@pytest.mark.django_db
def test_failed_version_bumps_are_logged_once_per_outage_and_each_goes_through_the_outbox(monkeypatch, caplog):
    """Every committed item, tier or seat change bumps the version: with Redis down, each of them
    logged its own warning (seed_demo printed one per item and booking; a booking load, one per
    booking). Each failed bump is still made durable through the outbox."""
    from ops.models import OutboxEvent

    redis = FlakyRedis()
    monkeypatch.setattr(catalog_cache, "shared_redis", lambda **kwargs: redis)
    with caplog.at_level("WARNING", logger="catalog.cache"):
        for _ in range(3):
            catalog_cache._bump_after_commit()
        redis.down = False
        for _ in range(2):
            catalog_cache._bump_after_commit()

    assert OutboxEvent.objects.filter(event_type=catalog_cache.CACHE_BUMP_EVENT).count() == 3
    assert [r.getMessage() for r in caplog.records if r.name == "catalog.cache"] == [
        "Catalog cache version bump failed (Timeout reading from socket); retrying each through the outbox "
        "until Redis answers", "Catalog cache version bumps reach Redis again"]
