"""The durable queue on Redis Streams, for workers on several machines.

Keys under ``prefix``:
  ``<prefix>:lane:<n>``     one stream per priority lane, read by the consumer group ``group``
  ``<prefix>:delayed:<n>``  sorted set of entries waiting for a retry, scored by due time (Redis clock, ms)
  ``<prefix>:dead``         dead-letter stream: the entry's fields plus lane, deliveries and reason
  ``<prefix>:dedup:<event_id>``  set with NX next to each XADD, expiring after ``dedup_ttl`` seconds

Every operation that touches more than one key is a Lua script, so a crash or a lost connection cannot leave
half of it done (a dedup key without its entry, an entry both delayed and pending). An acked entry is deleted
from its stream, so a stream's length is what is waiting or claimed.

Stream entry fields: ``e`` event pk, ``id`` event id, ``p`` payload, ``z`` "1" when zstd-compressed, ``d``
deliveries before this copy was added (a retry re-adds the entry; XREADGROUP counts from 1 again).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
import redis.retry
from asgiref.sync import sync_to_async
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, ResponseError, TimeoutError

from bridge.queue.base import LANES, Claimed, DeadLetter, DurableQueue, NewEntry, QueueError, over_max_reason
from bridge.queue.redis_scripts import BURY, CLAIM, ENQUEUE, EXTEND, RECLAIM, REQUEUE, RETRY
from bridge.queue.rows import drop_if_broken

T = TypeVar("T")

DEFAULT_DEDUP_TTL = 7 * 86_400
"""Seconds an event id is remembered: longer than any agent re-sends an event, short enough to bound memory."""

MAX_SCRIPT_BATCH = 1000
"""Entries per script call: one call blocks Redis for its duration (~1 ms per 1,000 small entries)."""

MAX_BLOCK_MS = 5000
"""Longest single blocking read; kept under the socket timeout so a long claim is a few reads, not a timeout."""


def connect(url: str) -> aioredis.Redis:
    """A client that rides out a Redis restart: connection errors and timeouts are retried with backoff for
    about 10 s (0.05 s doubling to 2 s) on a fresh connection."""
    return aioredis.Redis.from_url(
        url, retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=10), **_CLIENT
    )


def connect_sync(url: str) -> redis.Redis:
    """``connect``'s synchronous twin, for callers on a thread of their own (``enqueue_new_events_sync``)."""
    return redis.Redis.from_url(
        url, retry=redis.retry.Retry(ExponentialBackoff(cap=2.0, base=0.05), 10), **_CLIENT
    )


_CLIENT = {
    "decode_responses": False,
    "retry_on_error": [ConnectionError, TimeoutError],
    "socket_connect_timeout": 2,
    "socket_timeout": MAX_BLOCK_MS / 1000 + 5,
}


class RedisStreamsQueue(DurableQueue):
    """Redis Streams as a durable queue; entry ids are stream ids, dead-letter ids those of the dead stream.

    ``client`` must not decode responses (payloads are bytes). A queue made by ``from_url`` closes its client.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "cct:queue",
        group: str = "bridge",
        dedup_ttl: int = DEFAULT_DEDUP_TTL,
        owns_client: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if client.get_encoder().decode_responses:
            raise ValueError("the Redis client must be made with decode_responses=False: payloads are bytes")
        self.redis = client
        self.prefix = prefix
        self.group = group
        self.dedup_ttl = dedup_ttl
        self._owns_client = owns_client
        self._groups_ready = False
        # For enqueue_new_events_sync: the URL of a queue made by from_url, its synchronous client on first use.
        self.url: str | None = None
        self._sync: tuple[redis.Redis, Any] | None = None
        self._scripts = {
            name: client.register_script(source)
            for name, source in (
                ("enqueue", ENQUEUE),
                ("claim", CLAIM),
                ("reclaim", RECLAIM),
                ("retry", RETRY),
                ("bury", BURY),
                ("requeue", REQUEUE),
                ("extend", EXTEND),
            )
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStreamsQueue:
        queue = cls(connect(url), owns_client=True, **options)
        queue.url = url
        return queue

    # --- keys ---------------------------------------------------------------------------------------------------
    def lane_key(self, lane: int) -> str:
        return f"{self.prefix}:lane:{lane}"

    def delayed_key(self, lane: int) -> str:
        return f"{self.prefix}:delayed:{lane}"

    @property
    def dead_key(self) -> str:
        return f"{self.prefix}:dead"

    def dedup_key(self, event_id: str) -> str:
        return f"{self.prefix}:dedup:{event_id}"

    # --- the contract -------------------------------------------------------------------------------------------
    async def enqueue_batch(self, entries: list[NewEntry]) -> list[str | None]:
        if not entries:
            return []
        stored = await self._compress_all([entry.payload for entry in entries])
        ids: list[str | None] = []
        for keys, args in self._enqueue_calls(entries, stored):
            with _redis_errors():
                added = await self._grouped(lambda k=keys, a=args: self._scripts["enqueue"](keys=k, args=a))
            ids += [None if stream_id is None else stream_id.decode() for stream_id in added]
        return ids

    def enqueue_new_events_sync(
        self, insert_rows: Callable[[], list[NewEntry]]
    ) -> tuple[list[NewEntry], list[str | None]]:
        if self.url is None:
            raise NotImplementedError("a queue given its client has no synchronous one")
        drop_if_broken()
        entries = insert_rows()
        if self._sync is None:
            client = connect_sync(self.url)
            self._sync = client, client.register_script(ENQUEUE)
        client, enqueue = self._sync
        stored = [self.compressor.compress(entry.payload) for entry in entries]
        ids: list[str | None] = []
        with _redis_errors():
            for keys, args in self._enqueue_calls(entries, stored):
                if not self._groups_ready:
                    self._create_groups_sync(client)
                try:
                    added = enqueue(keys=keys, args=args)
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    self._create_groups_sync(client)
                    added = enqueue(keys=keys, args=args)
                ids += [None if stream_id is None else stream_id.decode() for stream_id in added]
        return entries, ids

    def _enqueue_calls(
        self, entries: list[NewEntry], stored: list[tuple[bytes, bool]]
    ) -> Iterator[tuple[list[str], list[Any]]]:
        """The enqueue script's keys and arguments, one call per MAX_SCRIPT_BATCH entries."""
        for start in range(0, len(entries), MAX_SCRIPT_BATCH):
            keys: list[str] = []
            args: list[Any] = [self.dedup_ttl]
            for i in range(start, min(start + MAX_SCRIPT_BATCH, len(entries))):
                entry = entries[i]
                keys += [self.dedup_key(entry.event_id), self.lane_key(entry.lane)]
                payload, compressed = stored[i]
                args += [entry.event_pk, entry.event_id, payload, b"1" if compressed else b"0"]
            yield keys, args

    async def claim(self, consumer: str, count: int, *, block_ms: int = 0) -> list[Claimed]:
        if count <= 0:
            return []
        deadline = time.monotonic() + block_ms / 1000
        keys = [self.lane_key(lane) for lane in LANES] + [self.delayed_key(lane) for lane in LANES]
        while True:
            with _redis_errors():
                raw, due_in_ms, last_ids = await self._grouped(
                    lambda: self._scripts["claim"](
                        keys=keys, args=[self.group, consumer, count, max(count, 100)]
                    )
                )
                fresh = [(LANES[i - 1], entry_id, fields, None) for i, entry_id, fields in raw]
                claimed = await self._hand_out(fresh)
            remaining_ms = (deadline - time.monotonic()) * 1000
            if claimed or remaining_ms <= 0:
                return claimed
            if not last_ids:
                continue  # everything claimed was over max_deliveries: look again at once
            wait_ms = min(remaining_ms, MAX_BLOCK_MS, due_in_ms if due_in_ms >= 0 else MAX_BLOCK_MS)
            # XREAD (not XREADGROUP) only waits for an XADD after the last delivered entry: it consumes nothing,
            # so a claim never takes more than ``count`` entries however many lanes wake up at once.
            streams = {self.lane_key(lane): last for lane, last in zip(LANES, last_ids, strict=True)}
            with _redis_errors():
                await self.redis.xread(streams, count=1, block=max(1, int(wait_ms)))

    async def ack(self, items: Iterable[Claimed], *, after: Callable[[], object] | None = None) -> None:
        by_lane: dict[int, list[str]] = defaultdict(list)
        for item in items:
            by_lane[item.lane].append(item.entry_id)
        if after is not None:
            await sync_to_async(after)()
        if not by_lane:
            return
        with _redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                for lane, ids in by_lane.items():
                    pipe.xack(self.lane_key(lane), self.group, *ids)
                    pipe.xdel(self.lane_key(lane), *ids)
                await pipe.execute()

    async def retry_later(self, item: Claimed, delay_s: float, error: str) -> bool:
        keys = [self.lane_key(item.lane), self.delayed_key(item.lane)]
        args = [self.group, item.entry_id, item.deliveries, max(0, int(delay_s * 1000)), error]
        with _redis_errors():
            return bool(await self._grouped(lambda: self._scripts["retry"](keys=keys, args=args)))

    async def dead_letter(self, item: Claimed, reason: str) -> bool:
        return bool(await self._bury(item.lane, [(item.entry_id, item.deliveries)], reason))

    async def reclaim_stale(
        self, consumer: str, min_idle_ms: int | None = None, *, count: int = 100
    ) -> list[Claimed]:
        if count <= 0:
            return []
        idle = int(self.visibility_timeout * 1000) if min_idle_ms is None else int(min_idle_ms)
        keys = [self.lane_key(lane) for lane in LANES]
        with _redis_errors():
            raw = await self._grouped(
                lambda: self._scripts["reclaim"](keys=keys, args=[self.group, consumer, idle, count])
            )
            return await self._hand_out(
                [(LANES[i - 1], entry_id, fields, n) for i, entry_id, fields, n in raw]
            )

    async def extend(self, consumer: str, items: Iterable[Claimed]) -> int:
        by_lane: dict[int, list[str]] = defaultdict(list)
        for item in items:
            by_lane[item.lane].append(item.entry_id)
        renewed = 0
        with _redis_errors():
            for lane, ids in by_lane.items():
                keys, args = [self.lane_key(lane)], [self.group, consumer, *ids]
                renewed += await self._grouped(lambda k=keys, a=args: self._scripts["extend"](keys=k, args=a))
        return renewed

    async def depth(self) -> dict[int, int]:
        with _redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for lane in LANES:
                    pipe.xlen(self.lane_key(lane))
                    pipe.zcard(self.delayed_key(lane))
                counts = await pipe.execute()
        return {lane: counts[2 * i] + counts[2 * i + 1] for i, lane in enumerate(LANES)}

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with _redis_errors():
            rows = await self.redis.xrevrange(self.dead_key, count=limit)
        letters = []
        for dead_id, fields in rows:
            letters.append(
                DeadLetter(
                    entry_id=dead_id.decode(),
                    event_pk=int(fields[b"e"]),
                    event_id=fields[b"id"].decode(),
                    lane=int(fields[b"lane"]),
                    payload=self._restore(fields[b"p"], fields[b"z"] == b"1"),
                    deliveries=int(fields[b"n"]),
                    reason=fields[b"reason"].decode(errors="replace"),
                )
            )
        return letters

    async def requeue_dead(self, ids: Iterable[str] | None = None) -> int:
        keys = [self.dead_key] + [self.lane_key(lane) for lane in sorted(LANES)]
        requeued = 0
        with _redis_errors():
            if ids is not None:
                wanted = list(ids)
                for start in range(0, len(wanted), MAX_SCRIPT_BATCH):
                    chunk = wanted[start : start + MAX_SCRIPT_BATCH]
                    requeued += await self._grouped(
                        lambda c=chunk: self._scripts["requeue"](keys=keys, args=[len(c), *c])
                    )
                return requeued
            while True:
                moved = await self._grouped(
                    lambda: self._scripts["requeue"](keys=keys, args=[MAX_SCRIPT_BATCH])
                )
                requeued += moved
                if moved < MAX_SCRIPT_BATCH:
                    return requeued

    async def close(self) -> None:
        if self._owns_client:
            await self.redis.aclose()
        if self._sync is not None:
            self._sync[0].close()
            self._sync = None

    # --- helpers ------------------------------------------------------------------------------------------------
    async def _hand_out(self, raw: list[tuple[int, bytes, list[bytes], int | None]]) -> list[Claimed]:
        """Turn script replies into Claimed items, dead-lettering those over max_deliveries.

        ``raw`` holds (lane, stream id, flat field list, delivery count of this copy or None for a first read).
        """
        claimed: list[Claimed] = []
        over: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for lane, entry_id, flat, copy_deliveries in raw:
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            deliveries = int(fields.get(b"d", 0)) + (copy_deliveries or 1)
            if self._over_max(deliveries):
                over[lane].append((entry_id.decode(), deliveries))
                continue
            claimed.append(
                Claimed(
                    entry_id=entry_id.decode(),
                    event_pk=int(fields[b"e"]),
                    event_id=fields[b"id"].decode(),
                    lane=lane,
                    payload=self._restore(fields[b"p"], fields[b"z"] == b"1"),
                    deliveries=deliveries,
                    enqueued_at=int(fields.get(b"t", 0)) / 1000,
                )
            )
        for lane, held in over.items():
            reason = over_max_reason(max(n for _, n in held), self.max_deliveries or 0)
            await self._bury(lane, held, reason)
        return claimed

    async def _bury(self, lane: int, held: list[tuple[str, int]], reason: str) -> int:
        keys = [self.lane_key(lane), self.dead_key]
        args: list[Any] = [self.group, lane, reason]
        for entry_id, deliveries in held:
            args += [entry_id, deliveries]
        with _redis_errors():
            return await self._grouped(lambda: self._scripts["bury"](keys=keys, args=args))

    async def _compress_all(self, payloads: list[bytes]) -> list[tuple[bytes, bool]]:
        if sum(len(p) for p in payloads) < 256 * 1024:
            return [self.compressor.compress(p) for p in payloads]
        # Around 1 ms of zstd per 100 KB: beyond this, compress off the event loop.
        return await asyncio.to_thread(lambda: [self.compressor.compress(p) for p in payloads])

    async def _grouped(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` once the consumer groups exist; recreate them if Redis lost them (restart without
        persistence, keys deleted) and try once more."""
        if not self._groups_ready:
            await self._create_groups()
        try:
            return await call()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
        await self._create_groups()
        return await call()

    async def _create_groups(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            self._groups_created(await self._group_creations(pipe).execute(raise_on_error=False))

    def _create_groups_sync(self, client: redis.Redis) -> None:
        with client.pipeline(transaction=False) as pipe:
            self._groups_created(self._group_creations(pipe).execute(raise_on_error=False))

    def _group_creations(self, pipe: Any) -> Any:
        for lane in LANES:
            # From id 0: entries added before the group existed are delivered too.
            pipe.xgroup_create(self.lane_key(lane), self.group, id="0", mkstream=True)
        return pipe

    def _groups_created(self, results: list[Any]) -> None:
        for result in results:
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise result
        self._groups_ready = True


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise QueueError(f"redis queue: {exc}") from exc
