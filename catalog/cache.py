"""Rendered item lists cached in Redis under a catalog version.

Every committed change to an item, its tiers or its seat counters bumps the version (after
commit, once per transaction). A reader reads the version before it computes, so a list built
from older rows is stored under an older version that nobody asks for any more: a reader never
gets a list older than the last change committed before its request began. If the bump cannot
reach Redis, a CATALOG_CACHE_BUMP outbox event retries it; cached lists also expire after
CATALOG_CACHE_TTL seconds. Without Redis (embedded mode) or while it is unreachable, lists are
computed fresh — never served stale.
"""

import hashlib
import logging

from django.conf import settings

from bookings_project.transactions import on_commit_once

logger = logging.getLogger(__name__)

VERSION_KEY = "catalog:version"
CACHE_BUMP_EVENT = "CATALOG_CACHE_BUMP"


def _redis():
    if not settings.REDIS_URL or not settings.CATALOG_CACHE_TTL:
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def catalog_changed() -> None:
    """Call inside the transaction that changes items, tiers or seat counters."""
    if _redis() is not None:
        on_commit_once(_bump_after_commit)


def _key(name: str) -> str:
    from django.core.cache import cache

    return cache.make_key(name)  # the configured KEY_PREFIX, like every other cache entry


def catalog_version_bump() -> None:
    """Raises when Redis is unreachable (the outbox handler retries it)."""
    _redis().incr(_key(VERSION_KEY))


def _bump_after_commit() -> None:
    try:
        catalog_version_bump()
    except Exception as exc:  # Redis down: make the bump durable, and retried, through the outbox
        from ops.outbox import outbox_enqueue

        logger.warning("Catalog cache version bump failed (%s); retrying through the outbox", exc)
        outbox_enqueue(event_type=CACHE_BUMP_EVENT)


def cached_list(key_parts, compute) -> tuple[int, bytes]:
    """(total, rendered JSON) for a list, from the cache or `compute()`."""
    redis = _redis()
    if redis is None:
        return compute()
    try:
        version = int(redis.get(_key(VERSION_KEY)) or 0)
        key = _key(f"catalog:list:{version}:" + hashlib.sha256(repr(key_parts).encode()).hexdigest())
        hit = redis.get(key)
    except Exception:  # unreachable: compute fresh rather than risk a stale list
        return compute()
    if hit is not None:
        total, _, body = hit.partition(b"\n")
        return int(total), body
    total, body = compute()
    try:
        redis.set(key, str(total).encode() + b"\n" + body, ex=settings.CATALOG_CACHE_TTL)
    except Exception:
        logger.debug("caching an item list failed", exc_info=True)
    return total, body
