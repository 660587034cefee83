"""The item-list cache while Redis fails (no Redis needed: a stand-in client): lists are computed
fresh, and the outage is logged once, not once per request."""

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
