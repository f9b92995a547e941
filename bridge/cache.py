"""A two-tier cache for what the sender reads on every event: recipients, settings, rendered messages.

L1 is an in-process LRU bounded by entries and age (BridgeSettings cache_max_entries / cache_ttl_seconds, live);
L2 is the Django cache (django-redis when REDIS_URL is set, shared by every worker), used only for values that
are worth sharing. Concurrent look-ups of the same missing key are coalesced into one load, so a burst of events
for a cold cache costs one database read, not one per event.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import pickle
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import caches

from bridge import metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")
_MISSING = object()


class TieredCache:
    def __init__(
        self,
        *,
        max_entries: int = 500,
        ttl_seconds: float = 1800.0,
        l2=None,
        validate_checksums: bool = False,
        namespace: str = "cct:cache",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``l2`` is a Django cache backend (``django.core.cache.caches[...]``) or None for L1 only."""
        self.max_entries = max_entries
        self.ttl = ttl_seconds
        self.l2 = l2
        self.validate_checksums = validate_checksums
        self.namespace = namespace
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._loading: dict[str, asyncio.Future] = {}
        self.stats = {"l1_hit": 0, "l1_miss": 0, "l2_hit": 0, "l2_miss": 0, "loads": 0}

    # --- tuning ------------------------------------------------------------------------------------------------
    def configure(self, *, max_entries: int, ttl_seconds: float, validate_checksums: bool) -> None:
        """Apply new limits without dropping what still fits."""
        self.max_entries, self.ttl, self.validate_checksums = max_entries, ttl_seconds, validate_checksums
        self._evict()

    def apply(self, s) -> None:
        """Take a BridgeSettings row's cache knobs, live."""
        self.configure(
            max_entries=s.cache_max_entries,
            ttl_seconds=s.cache_ttl_seconds,
            validate_checksums=s.cache_validate_checksums,
        )

    def __len__(self) -> int:
        return len(self._entries)

    # --- reading -----------------------------------------------------------------------------------------------
    async def get_or_load(
        self, key: str, load: Callable[[], Awaitable[T]], *, shared: bool = False, ttl: float | None = None
    ) -> T:
        """The cached value for ``key``, or ``load()``'s result, stored in L1 (and L2 when ``shared``) for ``ttl``
        seconds (default: the cache's TTL; a shorter one suits values whose change notice may be lost).

        Exceptions from ``load`` propagate to every caller waiting on that key and nothing is cached.
        """
        value = self._get_l1(key)
        if value is not _MISSING:
            return value
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await self._get_l2(key) if shared else _MISSING
            if value is _MISSING:
                self.stats["loads"] += 1
                value = await load()
                if shared:
                    await self._set_l2(key, value, ttl)
            self.put(key, value, ttl)
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody is left with an unretrieved error
            raise
        finally:
            self._loading.pop(key, None)

    def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._entries[key] = (self._clock() + min(ttl or self.ttl, self.ttl), value)
        self._entries.move_to_end(key)
        self._evict()

    async def invalidate(self, key: str, *, shared: bool = False) -> None:
        self._entries.pop(key, None)
        if shared and self.l2 is not None:
            try:
                await self.l2.adelete(self._l2_key(key))
            except Exception as exc:
                logger.warning("L2 cache delete failed: %s", exc)

    def clear(self) -> None:
        self._entries.clear()

    # --- tiers -------------------------------------------------------------------------------------------------
    def _get_l1(self, key: str) -> Any:
        entry = self._entries.get(key)
        if entry is None or entry[0] < self._clock():
            if entry is not None:
                del self._entries[key]
            self._count("l1", hit=False)
            return _MISSING
        self._entries.move_to_end(key)
        self._count("l1", hit=True)
        return entry[1]

    async def _get_l2(self, key: str) -> Any:
        if self.l2 is None:
            return _MISSING
        try:
            raw = await self.l2.aget(self._l2_key(key))
        except Exception as exc:  # Redis away: the database is still there behind the loader
            logger.warning("L2 cache read failed: %s", exc)
            raw = None
        value = self._unpack(raw) if raw is not None else _MISSING
        self._count("l2", hit=value is not _MISSING)
        return value

    async def _set_l2(self, key: str, value: Any, ttl: float | None = None) -> None:
        if self.l2 is None:
            return
        try:
            await self.l2.aset(self._l2_key(key), self._pack(value), timeout=min(ttl or self.ttl, self.ttl))
        except Exception as exc:
            logger.warning("L2 cache write failed: %s", exc)

    def _pack(self, value: Any) -> bytes:
        body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return hashlib.blake2b(body, digest_size=16).digest() + body

    def _unpack(self, raw: bytes) -> Any:
        checksum, body = raw[:16], raw[16:]
        if self.validate_checksums and hashlib.blake2b(body, digest_size=16).digest() != checksum:
            logger.error("L2 cache entry failed its checksum; ignoring it")
            return _MISSING
        return pickle.loads(body)

    def _l2_key(self, key: str) -> str:
        return _shared_key(self.namespace, key)

    def _evict(self) -> None:
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def _count(self, tier: str, *, hit: bool) -> None:
        result = "hit" if hit else "miss"
        self.stats[f"{tier}_{result}"] += 1
        metrics.CACHE_REQUESTS.labels(tier=tier, result=result).inc()

    def hit_rate(self) -> float:
        looked = self.stats["l1_hit"] + self.stats["l1_miss"]
        return self.stats["l1_hit"] / looked if looked else 0.0


# --- one cache per worker --------------------------------------------------------------------------------------
def build_cache() -> TieredCache:
    """A worker's cache: L2 is the Django cache (django-redis) when REDIS_URL is set, none otherwise (a local-memory
    L2 would only repeat L1 in the same process)."""
    return TieredCache(l2=_shared_tier(), namespace=_namespace())


def forget_shared(key: str) -> None:
    """Drop ``key`` from L2, from synchronous code in any process (a settings save in the web process).

    Never raises: with Redis away the entry expires with its TTL, and workers still re-read on their heartbeat.
    """
    l2 = _shared_tier()
    if l2 is None:
        return
    try:
        l2.delete(_shared_key(_namespace(), key))
    except Exception as exc:
        logger.warning("L2 cache delete failed: %s", exc)


def _shared_tier():
    return caches["default"] if settings.REDIS_URL else None


def _namespace() -> str:
    return f"{settings.CC_TELEGRAM_REDIS_PREFIX}:cache"


def _shared_key(namespace: str, key: str) -> str:
    return f"{namespace}:{key}"
