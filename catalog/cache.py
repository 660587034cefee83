"""Rendered item lists cached in Redis under a catalog version.

Every committed change to an item, its tiers or its seat counters replaces the version with a
fresh random one (after commit, once per transaction). A reader reads the version before it computes, so a list built
from older rows is stored under an older version that nobody asks for any more: a reader never
gets a list older than the last change committed before its request began. If the bump cannot
reach Redis, a CATALOG_CACHE_BUMP outbox event retries it; cached lists also expire after
CATALOG_CACHE_TTL seconds. Without Redis (embedded mode) or while it is unreachable, lists are
computed fresh — never served stale (and an outage is logged once, not once per request).
"""

import hashlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from typing import NamedTuple

from django.conf import settings

from bookings_project.cache import REDIS_FAILURES, OutageLog, shared_key, shared_redis
from bookings_project.transactions import on_commit_once

logger = logging.getLogger(__name__)

VERSION_KEY = "catalog:version"
CACHE_BUMP_EVENT = "CATALOG_CACHE_BUMP"

list_cache_outage = OutageLog(logger, "Item list cache: Redis unreachable (%s); computing lists fresh",
                              "Item list cache: Redis reachable again")
bump_outage = OutageLog(logger, "Catalog cache version bump failed (%s); retrying each through the outbox until Redis "
                        "answers", "Catalog cache version bumps reach Redis again")


def _redis():
    return shared_redis() if settings.CATALOG_CACHE_TTL else None


def catalog_changed() -> None:
    """Call inside the transaction that changes items, tiers or seat counters."""
    if _redis() is not None:
        on_commit_once(_bump_after_commit)


def catalog_version_bump() -> None:
    """A fresh random version, never a counter: a counter restarts when Redis loses its data,
    and a list cached in a web process under a reused number would be served stale. Raises when
    Redis is unreachable (the outbox handler retries it). Without Redis (a bump queued during an
    outage, run after a restart in embedded mode) no list is cached anywhere: nothing to do."""
    redis = shared_redis(always_try=True)
    if redis is not None:
        redis.set(shared_key(VERSION_KEY), uuid.uuid4().hex)


def _current_version(redis) -> str:
    version = redis.get(shared_key(VERSION_KEY))
    if version is None:  # first use, or Redis lost its data: start a version nobody has used
        redis.set(shared_key(VERSION_KEY), uuid.uuid4().hex, nx=True)
        version = redis.get(shared_key(VERSION_KEY))
    return version.decode() if isinstance(version, bytes) else str(version)


def _bump_after_commit() -> None:
    try:
        catalog_version_bump()
    except Exception as exc:  # Redis down: make the bump durable, and retried, through the outbox
        from ops.outbox import outbox_enqueue

        bump_outage.failed(exc)  # (once per outage: every committed change bumps)
        outbox_enqueue(event_type=CACHE_BUMP_EVENT)
        return
    bump_outage.answered()


class RenderedList(NamedTuple):
    total: int  # rows in the whole list (X-Total-Count when paged)
    body: bytes  # the JSON
    etag: str  # a digest of both: the response's ETag (If-None-Match → 304)


def rendered_list(total: int, body: bytes) -> RenderedList:
    return RenderedList(total, body, hashlib.blake2b(b"%d\n%s" % (total, body), digest_size=16).hexdigest())


class _LocalLists:
    """The last few lists this process served, by their Redis key (which holds the catalog
    version): a repeat reader skips moving the whole body out of Redis again. Same freshness as
    Redis itself: the version is still read from Redis on every request, and an entry expires
    after CATALOG_CACHE_TTL like its Redis copy."""

    def __init__(self, entries: int):
        self.entries, self.lists, self.lock = entries, OrderedDict(), threading.Lock()

    def get(self, key: str) -> RenderedList | None:
        with self.lock:
            hit = self.lists.get(key)
            if hit is None or hit[0] < time.monotonic():
                return None
            self.lists.move_to_end(key)
            return hit[1]

    def put(self, key: str, value: RenderedList) -> None:
        with self.lock:
            self.lists[key] = (time.monotonic() + settings.CATALOG_CACHE_TTL, value)
            self.lists.move_to_end(key)
            while len(self.lists) > self.entries:
                self.lists.popitem(last=False)


_local = _LocalLists(entries=16)


def cached_list(key_parts, compute) -> RenderedList:
    """A list's rendering, from this process, from Redis, or `compute()` (→ (total, JSON)). The
    key holds TIME_ZONE: the JSON carries local times without offset, so a list rendered by a
    process running in another zone (before a restart that changed it, or during a rolling
    one) must not be served."""
    redis = _redis()
    if redis is None:
        return rendered_list(*compute())
    try:
        version = _current_version(redis)
        digest = hashlib.sha256(repr((settings.TIME_ZONE, key_parts)).encode()).hexdigest()
        key = shared_key(f"catalog:list:{version}:{digest}")
        local = _local.get(key)
        hit = redis.get(key) if local is None else None
    except REDIS_FAILURES as exc:  # unreachable: compute fresh rather than risk a stale list
        list_cache_outage.failed(exc)
        return rendered_list(*compute())
    list_cache_outage.answered()
    if local is not None:
        return local
    if hit is not None:
        total, _, body = hit.partition(b"\n")
        result = rendered_list(int(total), body)
        _local.put(key, result)
        return result
    result = rendered_list(*compute())
    _local.put(key, result)
    try:
        redis.set(key, str(result.total).encode() + b"\n" + result.body, ex=settings.CATALOG_CACHE_TTL)
    except REDIS_FAILURES:
        logger.debug("caching an item list failed", exc_info=True)
    return result
