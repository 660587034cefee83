"""Shared cache with a documented failure mode.

Rate-limit counters live in Redis so limits hold across web processes. When Redis is
unreachable the limiter must neither crash the request (500) nor silently stop limiting, so
every cache call falls back to a process-local cache: limits keep holding per process until
Redis answers again. A warning is logged once per outage.

A Redis that hangs (no reply, no reset) costs each call its socket timeout. So after one call
fails, this process leaves Redis alone for REDIS_RETRY_SECONDS: cache calls go straight to the
fallback and the raw client's calls (shared_redis) fail at once, so a request on a hung Redis
waits at most one timeout per window instead of one per call.
"""

import logging
import threading
import time

from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError, RedisError, TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# What a call to Redis raises when Redis fails (unreachable, timed out, resting, refusing a command).
REDIS_FAILURES = (ConnectionInterrupted, RedisError, ConnectionError, TimeoutError, OSError)
# Of those, the ones that say Redis cannot be reached (rather than that a command was wrong).
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)


def _unreachable(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionInterrupted):  # django-redis wraps the client's error
        exc = exc.__cause__
    return isinstance(exc, _UNREACHABLE)


class RedisResting(ConnectionError):
    """Redis failed within the last REDIS_RETRY_SECONDS in this process: not asked again yet."""


class Rest:
    """A dependency this process leaves alone for a while after it failed, and why: each try
    while it is down would wait out its timeout again (Redis, the documents database, the mail
    server). `seconds`: how long, or a callable read when a rest starts (a setting)."""

    def __init__(self, seconds):
        self._seconds = seconds
        self._until, self._reason = 0.0, ""  # (time.monotonic())

    def start(self, reason: str = "unreachable") -> None:
        seconds = self._seconds() if callable(self._seconds) else self._seconds
        self._until, self._reason = time.monotonic() + seconds, reason

    def end(self) -> None:
        self._until = 0.0

    def reason(self) -> str:
        """Why it rests (the failure that started the rest), or "" when it does not."""
        return self._reason if time.monotonic() < self._until else ""


REDIS_REST = Rest(lambda: settings.REDIS_RETRY_SECONDS)


def redis_resting() -> bool:
    return bool(REDIS_REST.reason())


def redis_failed() -> None:
    """A call to Redis failed (refused, timed out): rest it for REDIS_RETRY_SECONDS."""
    REDIS_REST.start()


class _RestingRedis:
    """A Redis client whose calls fail at once (RedisResting) while Redis rests, and put it to
    rest when they fail. `always_try`: calls go to Redis even while it rests (and still put it
    to rest when they fail)."""

    def __init__(self, client, *, always_try: bool = False):
        self._client = client
        self._always_try = always_try

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(*args, **kwargs):
            if redis_resting() and not self._always_try:
                raise RedisResting("Redis failed moments ago; not retried yet")
            try:
                return method(*args, **kwargs)
            except REDIS_FAILURES as exc:
                if _unreachable(exc):
                    redis_failed()
                raise

        return call


class OutageLog:
    """Warns once when a dependency (Redis, a readiness check) fails, with `traceback` its
    traceback too, and once when it answers again: not on every call of an outage (every
    request would log it)."""

    def __init__(self, log: logging.Logger, failing: str, answering: str, *, traceback: bool = False):
        self._log, self._failing, self._answering, self._traceback = log, failing, answering, traceback
        self._down = threading.Event()

    def failed(self, exc: BaseException) -> None:
        if not self._down.is_set():
            self._down.set()
            self._log.warning(self._failing, exc, exc_info=exc if self._traceback else None)

    def answered(self) -> None:
        if self._down.is_set():
            self._down.clear()
            self._log.warning(self._answering)

    def reset(self) -> None:
        self._down.clear()


class FailoverRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._fallback = LocMemCache("failover-" + str(server), {"TIMEOUT": params.get("TIMEOUT", 300)})
        self.outage = OutageLog(logger, "Redis cache unreachable (%s); using process-local fallback",
                                "Redis cache reachable again")

    def _call(self, name, *args, **kwargs):
        if redis_resting():
            return getattr(self._fallback, name)(*args, **kwargs)
        try:
            result = getattr(super(), name)(*args, **kwargs)
        except REDIS_FAILURES as exc:
            if _unreachable(exc):
                redis_failed()
            self.outage.failed(exc)
            return getattr(self._fallback, name)(*args, **kwargs)
        self.outage.answered()
        return result

    def add(self, *args, **kwargs):
        return self._call("add", *args, **kwargs)

    def get(self, *args, **kwargs):
        return self._call("get", *args, **kwargs)

    def set(self, *args, **kwargs):
        return self._call("set", *args, **kwargs)

    def incr(self, *args, **kwargs):
        return self._call("incr", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._call("delete", *args, **kwargs)

    def clear(self):
        self._fallback.clear()
        return self._call("clear")


def shared_redis(*, always_try: bool = False):
    """The shared cache's own Redis client (its calls raise when Redis is unreachable, and at
    once while it rests), or None in embedded mode (no REDIS_URL). `always_try` for the few
    calls whose skipping would cost more than a timeout: the catalog version bump (skipped, other
    processes would serve a list older than the change — Redis may answer them already) and the
    dispatcher clearing the nudge flag (left set, commits would not nudge for a few seconds)."""
    if not settings.REDIS_URL:
        return None
    from django_redis import get_redis_connection

    return _RestingRedis(get_redis_connection("default"), always_try=always_try)


def shared_key(name: str) -> str:
    """`name` under the cache's KEY_PREFIX, like every other entry of the shared cache."""
    from django.core.cache import cache

    return cache.make_key(name)
