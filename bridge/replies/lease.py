"""Leases: at most one holder of a named right at a time, across every worker, lost when the holder dies.

Telegram allows one getUpdates consumer per bot (a second one makes both see 409 Conflict), so every worker asks
for the poller's lease before each poll and only the holder polls; the others stand by and take over once the
holder releases it or stops renewing it for ``ttl`` seconds.

- `RedisLease` (when REDIS_URL is set): ``SET key holder NX PX ttl``; renewal and release are compare-and-set
  Lua scripts, so a holder that lost its lease (paused past the ttl) never extends or deletes the new holder's.
- `DatabaseLease` (the embedded default): a conditional UPDATE of the PollerState row, taken when free, expired
  or already ours; the database serialises competing updates, so exactly one worker's update matches.

Contract: ``acquire()`` takes or renews the lease and returns whether this holder has it now; ``release()`` gives
it up if held. Both raise only for an unreachable Redis or database (the caller treats that as "not held").
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from asgiref.sync import sync_to_async
from django.db.models import Q
from django.utils import timezone

from bridge.models import PollerState

DEFAULT_TTL = 15.0
"""Seconds without renewal after which a holder is presumed dead. The poller renews at least every ttl / 3."""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease(Protocol):
    holder: str
    ttl: float

    async def acquire(self) -> bool: ...

    async def release(self) -> None: ...


class RedisLease:
    def __init__(self, redis_url: str, key: str, holder: str, *, ttl: float = DEFAULT_TTL) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self.key = key
        self.holder = holder
        self.ttl = ttl
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)

    async def acquire(self) -> bool:
        ttl_ms = int(self.ttl * 1000)
        if await self._renew(keys=[self.key], args=[self.holder, ttl_ms]):
            return True
        return bool(await self.redis.set(self.key, self.holder, nx=True, px=ttl_ms))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self.holder])

    async def current_holder(self) -> str:
        value = await self.redis.get(self.key)
        return value.decode() if value else ""

    async def close(self) -> None:
        await self.redis.aclose()


class DatabaseLease:
    """The lease in the PollerState row of ``bot_id`` (created on first use)."""

    def __init__(self, bot_id: str, holder: str, *, ttl: float = DEFAULT_TTL) -> None:
        self.bot_id = bot_id
        self.holder = holder
        self.ttl = ttl

    async def acquire(self) -> bool:
        return await sync_to_async(self._acquire)()

    async def release(self) -> None:
        await sync_to_async(self._release)()

    async def close(self) -> None:
        """Nothing to close: the lease lives in the database."""

    def _acquire(self) -> bool:
        """One conditional UPDATE (the holder renews before every poll); the row is created on first use."""
        if self._take():
            return True
        _, created = PollerState.objects.get_or_create(bot_id=self.bot_id)
        return created and self._take()

    def _take(self) -> bool:
        now = timezone.now()
        taken = (
            PollerState.objects.filter(bot_id=self.bot_id)
            .filter(Q(holder=self.holder) | Q(holder="") | Q(leased_until__lt=now) | Q(leased_until=None))
            .update(holder=self.holder, leased_until=now + timedelta(seconds=self.ttl))
        )
        return taken == 1

    def _release(self) -> None:
        PollerState.objects.filter(bot_id=self.bot_id, holder=self.holder).update(
            holder="", leased_until=None
        )
