"""Shared cache with a documented failure mode.

Rate-limit counters live in Redis so limits hold across web processes. When Redis is
unreachable the limiter must neither crash the request (500) nor silently stop limiting, so
every cache call falls back to a process-local cache: limits keep holding per process until
Redis answers again. A warning is logged once per outage.
"""

import logging
import threading

from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_FAILURES = (ConnectionInterrupted, RedisError, ConnectionError, TimeoutError, OSError)


class FailoverRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._fallback = LocMemCache("failover-" + str(server), {"TIMEOUT": params.get("TIMEOUT", 300)})
        self._degraded = threading.Event()

    def _call(self, name, *args, **kwargs):
        try:
            result = getattr(super(), name)(*args, **kwargs)
        except _FAILURES as exc:
            if not self._degraded.is_set():
                self._degraded.set()
                logger.warning("Redis cache unreachable (%s); using process-local fallback", exc)
            return getattr(self._fallback, name)(*args, **kwargs)
        if self._degraded.is_set():
            self._degraded.clear()
            logger.warning("Redis cache reachable again")
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


def shared_redis():
    """The shared cache's own Redis client (its calls raise when Redis is unreachable), or None
    in embedded mode (no REDIS_URL)."""
    if not settings.REDIS_URL:
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def shared_key(name: str) -> str:
    """`name` under the cache's KEY_PREFIX, like every other entry of the shared cache."""
    from django.core.cache import cache

    return cache.make_key(name)
