"""Per-client-IP limits on login, refresh and both registrations; the cache's Redis-down mode."""

import logging

import pytest
from django.test import override_settings
from freezegun import freeze_time

from accounts.tests.factories import DEFAULT_PASSWORD
from accounts.tokens import token_pair_for_user
from bookings_project.cache import FailoverRedisCache
from bookings_project.tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def _login(client, n):
    return client.post("/api/v1/auth/login", {"username": "alice", "password": DEFAULT_PASSWORD}, format="json")


def _core_login(client, n):
    return client.post("/auth/login", {"email": "alice@example.com", "password": DEFAULT_PASSWORD}, format="json")


def _register(client, n):
    return client.post("/api/v1/user", {"username": f"new{n}", "email": f"new{n}@example.com",
                                        "password": "S3cure-pass!word"}, format="json")


def _core_register(client, n):
    return client.post("/auth/register", {"email": f"core{n}@example.com", "password": "S3cure-pass!word"},
                       format="json")


ENDPOINTS = [
    ("RATE_LIMIT_LOGIN", _login, 200),
    ("RATE_LIMIT_LOGIN", _core_login, 200),
    ("RATE_LIMIT_REGISTER", _register, 201),
    ("RATE_LIMIT_REGISTER", _core_register, 201),
]


@pytest.fixture
def alice(make_user):
    return make_user(username="alice", email="alice@example.com")


@pytest.fixture(autouse=True)
def _one_window():
    """Limits count per fixed window: a frozen clock keeps a test from straddling two."""
    with freeze_time():
        yield


@pytest.mark.parametrize("setting, send, ok", ENDPOINTS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_over_the_limit_is_429_with_retry_after(api_client, alice, setting, send, ok):
    with override_settings(**{setting: "3/m"}):
        assert [send(api_client, n).status_code for n in range(3)] == [ok] * 3
        response = send(api_client, 3)
    body = assert_error(response, 429)
    assert body["error"] == "too_many_requests"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_refresh_over_the_limit_is_429(api_client, alice):
    with override_settings(RATE_LIMIT_REFRESH="3/m"):
        token = token_pair_for_user(alice)[1]
        for _ in range(3):
            response = api_client.post("/api/v1/auth/refresh", {"refreshToken": token}, format="json")
            assert response.status_code == 200
            token = response.json()["refreshToken"]
        response = api_client.post("/api/v1/auth/refresh", {"refreshToken": token}, format="json")
    assert_error(response, 429, path="/api/v1/auth/refresh")
    assert int(response["Retry-After"]) >= 1


@override_settings(RATE_LIMIT_LOGIN="3/m")
def test_failed_attempts_count_and_the_limit_is_per_client_ip(api_client, alice):
    for _ in range(3):
        wrong = api_client.post("/api/v1/auth/login", {"username": "alice", "password": "nope-nope-1"},
                                format="json")
        assert wrong.status_code == 401
    # even the right password is refused now: brute force cannot continue
    assert_error(_login(api_client, 0), 429)
    other_ip = api_client.post("/api/v1/auth/login", {"username": "alice", "password": DEFAULT_PASSWORD},
                               format="json", REMOTE_ADDR="10.0.0.7")
    assert other_ip.status_code == 200



@override_settings(RATE_LIMIT_LOGIN="3/m", TRUSTED_PROXY_COUNT=1)
def test_behind_one_trusted_proxy_the_limit_counts_the_address_that_proxy_saw(api_client, alice):
    """X-Forwarded-For: "<whatever the client wrote>, <address the proxy saw>": with one trusted
    proxy only the rightmost entry is believed. A client rotating a spoofed leftmost entry is
    still one client; another real address has its own budget."""
    def login(spoofed, real):
        return api_client.post("/api/v1/auth/login", {"username": "alice", "password": DEFAULT_PASSWORD},
                               format="json", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"{spoofed}, {real}")

    assert [login(f"198.51.100.{n}", "203.0.113.5").status_code for n in range(3)] == [200] * 3
    assert_error(login("198.51.100.99", "203.0.113.5"), 429)
    assert login("198.51.100.1", "203.0.113.6").status_code == 200

@override_settings(RATE_LIMIT_REGISTER="2/m")
def test_both_registration_forms_share_one_budget(api_client):
    assert _register(api_client, 1).status_code == 201
    assert _core_register(api_client, 2).status_code == 201
    assert_error(_register(api_client, 3), 429)
    assert_error(_core_register(api_client, 4), 429)


@pytest.mark.parametrize("setting, send, ok", ENDPOINTS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_rate_limit_enabled_0_disables_limits(api_client, alice, setting, send, ok):
    with override_settings(RATELIMIT_ENABLE=False, **{setting: "1/m"}):
        assert [send(api_client, n).status_code for n in range(4)] == [ok] * 4


# --- the shared cache when Redis is down (bookings_project/cache.py) ---------------------------


@pytest.fixture
def unreachable_cache():
    return FailoverRedisCache("redis://127.0.0.1:1/0", {
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient",
                    "SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        "KEY_PREFIX": "ha-failover-test",
    })


def test_failover_cache_falls_back_instead_of_raising(unreachable_cache, caplog):
    cache = unreachable_cache
    with caplog.at_level(logging.WARNING, logger="bookings_project.cache"):
        assert cache.add("counter", 1, 60) is True
        assert cache.add("counter", 1, 60) is False  # the fallback really remembers
        assert cache.incr("counter") == 2
        assert cache.incr("counter") == 3
        assert cache.get("counter") == 3
        cache.set("other", "value", 60)
        assert cache.get("other") == "value"
        cache.delete("other")
        assert cache.get("other", "gone") == "gone"
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # warned once per outage, not once per call


def test_rate_limit_keeps_holding_while_redis_is_down(api_client, alice, unreachable_cache, monkeypatch):
    """The limiter reads the cache through django.core.cache.caches: point it at the dead Redis."""
    from django_ratelimit import core

    class Caches(dict):
        def __getitem__(self, name):
            return unreachable_cache

    monkeypatch.setattr(core, "caches", Caches())
    with override_settings(RATE_LIMIT_LOGIN="2/m"):
        assert [_login(api_client, n).status_code for n in range(2)] == [200, 200]
        assert_error(_login(api_client, 2), 429)


def test_the_admin_login_shares_the_login_limit(client, api_client, alice):
    """The admin's password form is a login too: its attempts count with the API's, per IP."""
    alice.roles = ["ADMIN"]  # one the admin admits: only the limit keeps her out below
    alice.save()
    with override_settings(RATE_LIMIT_LOGIN="3/m"):
        assert _login(api_client, 0).status_code == 200
        statuses = [client.post("/admin/login/", {"username": "alice", "password": "wrong"}).status_code
                    for _ in range(3)]
        assert statuses == [200, 200, 429]  # the form re-rendered twice, then refused
        refused = client.post("/admin/login/", {"username": "alice", "password": DEFAULT_PASSWORD})
        assert 1 <= int(refused["Retry-After"]) <= 60
        # The login page again (a person at a browser), saying why; even the right password is not tried.
        assert refused["Content-Type"].startswith("text/html") and b'name="password"' in refused.content
        assert b"Too many login attempts from your address; try again in" in refused.content
        assert "_auth_user_id" not in client.session
        assert_error(_login(api_client, 1), 429)
        assert client.get("/admin/login/").status_code == 200  # the page itself still shows


@pytest.mark.parametrize("first, second, shared", [
    ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # one host's /64
    ("2001:db8:1:2::1", "2001:db8:1:3::1", False),  # the next /64: another host
    ("::ffff:203.0.113.7", "203.0.113.7", True),  # IPv4-mapped is the IPv4 address
    ("203.0.113.7", "203.0.113.8", False),
])
def test_an_ipv6_host_is_counted_by_its_64_and_a_mapped_address_as_ipv4(api_client, alice, first, second, shared):
    with override_settings(RATE_LIMIT_LOGIN="3/m"):
        for _ in range(3):
            api_client.post("/api/v1/auth/login", {"username": "alice", "password": DEFAULT_PASSWORD},
                            format="json", REMOTE_ADDR=first)
        response = api_client.post("/api/v1/auth/login", {"username": "alice", "password": DEFAULT_PASSWORD},
                                   format="json", REMOTE_ADDR=second)
    assert response.status_code == (429 if shared else 200)


@pytest.fixture
def hung_redis():
    """A TCP server that accepts connections and reads, but never answers: a hung Redis (a
    stopped process, a partition that drops packets). Yields the URL and the bytes received."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    received = []
    open_sockets = [server]

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            open_sockets.append(conn)
            threading.Thread(target=lambda c=conn: [received.append(len(b)) for b in iter(lambda: c.recv(4096), b"")],
                             daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0", received
    for sock in open_sockets:
        sock.close()


def test_a_hung_redis_costs_one_timeout_per_rest_period_not_one_per_call(hung_redis):
    """Every cache call (rate limits, the nudge flag, catalog versions) would otherwise wait out
    its socket timeout: measured with a stopped Redis, a booking took 11.5 s before this rest."""
    import bookings_project.cache as shared

    url, received = hung_redis
    cache = FailoverRedisCache(url, {"OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient",
                                                 "SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
                                     "KEY_PREFIX": "hung"})
    assert cache.add("counter", 1, 60) is True  # timed out once, then the fallback answered
    sent = sum(received)
    assert sent > 0 and shared.redis_resting()
    for _ in range(5):  # while Redis rests, nothing is sent to it
        cache.incr("counter")
    assert cache.get("counter") == 6 and sum(received) == sent

    shared.REDIS_REST.end()  # REDIS_RETRY_SECONDS later
    cache.get("counter")
    assert sum(received) > sent  # asked again, once


def test_the_raw_client_fails_at_once_while_redis_rests(monkeypatch, settings):
    """shared_redis() (outbox nudge flag, catalog versions): the first failure puts Redis to rest,
    later calls raise RedisResting without touching it."""
    import bookings_project.cache as shared

    calls = []

    class Hung:
        def set(self, *args, **kwargs):
            calls.append(args)
            raise TimeoutError("Timeout reading from socket")

    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    monkeypatch.setattr("django_redis.get_redis_connection", lambda alias: Hung())
    with pytest.raises(TimeoutError):
        shared.shared_redis().set("k", 1)
    with pytest.raises(shared.RedisResting):
        shared.shared_redis().set("k", 1)
    assert len(calls) == 1


def test_a_command_error_does_not_put_redis_to_rest(monkeypatch, settings):
    """Only an unreachable Redis rests: a refused command (a bug, a wrong type) is that call's
    error alone."""
    import redis

    import bookings_project.cache as shared

    class Picky:
        def get(self, *args, **kwargs):
            raise redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    monkeypatch.setattr("django_redis.get_redis_connection", lambda alias: Picky())
    with pytest.raises(redis.exceptions.ResponseError):
        shared.shared_redis().get("k")
    assert not shared.redis_resting()
