"""The durable queue's contract, shared by the Redis Streams and the database backends.

Delivery is at least once: an entry stays in the queue from ``enqueue_batch`` until ``ack``, ``dead_letter``, or
an automatic dead-lettering after ``max_deliveries`` claims. A consumer that dies between claim and ack loses
nothing: after the visibility timeout ``reclaim_stale`` hands its entries to another consumer.

Payloads are opaque bytes (the serialized event); the queue compresses them above the Compressor's threshold and
gives them back as they were put in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from bridge.compression import Compressor
from bridge.events.priority import Priority

T = TypeVar("T")

LANES: tuple[int, ...] = tuple(sorted((p.value for p in Priority), reverse=True))
"""Lanes in claim order: urgent first."""

DEFAULT_VISIBILITY_TIMEOUT = 60.0
"""Seconds a claimed entry stays invisible before another consumer may reclaim it. It must outlast the slowest
send, retries against Telegram's 429s included; shorter means faster recovery from a crashed worker."""

DEFAULT_MAX_DELIVERIES = 10
"""Claims without an ack before an entry is dead-lettered: a payload that crashes every worker must not loop."""


class QueueError(Exception):
    """The queue's storage failed (Redis or the database); the operation may be retried."""


@dataclass(frozen=True, slots=True)
class NewEntry:
    event_pk: int
    event_id: str
    lane: int
    payload: bytes

    def __post_init__(self) -> None:
        if self.lane not in LANES:
            raise ValueError(f"lane must be one of {sorted(LANES)}, not {self.lane!r}")


@dataclass(frozen=True, slots=True)
class Claimed:
    """An entry leased to one consumer; ``deliveries`` counts this claim too (1 on the first)."""

    entry_id: str
    event_pk: int
    event_id: str
    lane: int
    payload: bytes
    deliveries: int
    enqueued_at: float = 0.0
    """When the event was accepted (epoch seconds): the start of its end-to-end latency."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry taken out of circulation; ``entry_id`` is what ``requeue_dead`` takes."""

    entry_id: str
    event_pk: int
    event_id: str
    lane: int
    payload: bytes
    deliveries: int
    reason: str


def over_max_reason(deliveries: int, max_deliveries: int) -> str:
    return f"claimed {deliveries} times without an ack (max_deliveries={max_deliveries})"


class DurableQueue(ABC):
    """What the ingest and send stages need from a queue; both backends pass tests/test_queue.py.

    ``retry_later`` and ``dead_letter`` act only while the entry is still held under the claim the caller got
    (same ``deliveries``): a consumer whose entry was reclaimed by another after the visibility timeout cannot
    move it away from under the new holder. They return whether they acted.
    """

    def __init__(
        self,
        *,
        compressor: Compressor | None = None,
        visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
        max_deliveries: int | None = DEFAULT_MAX_DELIVERIES,
    ) -> None:
        if visibility_timeout <= 0:
            raise ValueError("visibility_timeout must be positive")
        if max_deliveries is not None and max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1 (or None for no limit)")
        self.compressor = compressor or Compressor()
        self.visibility_timeout = visibility_timeout
        self.max_deliveries = max_deliveries

    @abstractmethod
    async def enqueue_batch(self, entries: list[NewEntry]) -> list[str | None]:
        """Store entries durably; per input, its entry id or None when its event_id was already queued."""

    async def enqueue_new_events(
        self, insert_rows: Callable[[], list[NewEntry]]
    ) -> tuple[list[NewEntry], list[str | None]]:
        """Insert new events' rows, then enqueue them: ``insert_rows`` runs on a database thread and returns their
        entries (pks filled in); per entry, its id or None, as ``enqueue_batch``.

        The path of events most likely new (files, MCP tools, the shell), where every millisecond counts. Raises
        IntegrityError when a row exists already (the caller falls back to a path that looks first). The database
        queue overrides this to write the rows and their entries in one transaction.
        """
        from asgiref.sync import sync_to_async

        entries = await sync_to_async(insert_rows)()
        return entries, await self.enqueue_batch(entries)

    def enqueue_new_events_sync(
        self, insert_rows: Callable[[], list[NewEntry]]
    ) -> tuple[list[NewEntry], list[str | None]]:
        """``enqueue_new_events`` for a caller on a thread of its own, with no event loop (the MCP server's send
        lane, bridge.mcp.lane): ``insert_rows`` runs on the calling thread. Raises NotImplementedError when the
        backend cannot work that way (the caller then takes the asynchronous path)."""
        raise NotImplementedError

    @abstractmethod
    async def claim(self, consumer: str, count: int, *, block_ms: int = 0) -> list[Claimed]:
        """Lease up to ``count`` waiting entries to ``consumer``, higher lanes first; with ``block_ms`` wait up to
        that long for the first one. Entries over ``max_deliveries`` are dead-lettered instead of returned."""

    async def claim_then(
        self, consumer: str, count: int, then: Callable[[list[Claimed]], T], *, block_ms: int = 0
    ) -> tuple[list[Claimed], T | None]:
        """``claim``, then ``then(claimed)`` (a synchronous database function) when anything was claimed; returns
        both. The claim stands whatever ``then`` does: it should return its errors rather than raise them, or
        the claimed entries come back only after the visibility timeout. The database backend runs both in one
        trip to its thread, which is the point: one hop less between a queued event and its send.
        """
        from asgiref.sync import sync_to_async

        claimed = await self.claim(consumer, count, block_ms=block_ms)
        if not claimed:
            return claimed, None
        return claimed, await sync_to_async(then)(claimed)

    @abstractmethod
    async def ack(self, items: Iterable[Claimed], *, after: Callable[[], object] | None = None) -> None:
        """Remove handled entries for good.

        ``after``: a synchronous database function, the caller's record of what it did with the entries, run
        first: an entry is never acked without it. The database backend runs both in one transaction (one trip
        to the database thread for the whole round), the Redis backend acks once it returned; when it raises,
        nothing is acked. With no items, only ``after`` runs.
        """

    @abstractmethod
    async def retry_later(self, item: Claimed, delay_s: float, error: str) -> bool:
        """Release ``item`` so that it can be claimed again in ``delay_s`` seconds, noting ``error``."""

    @abstractmethod
    async def dead_letter(self, item: Claimed, reason: str) -> bool:
        """Take ``item`` out of circulation, keeping its payload and ``reason`` for inspection and requeue."""

    @abstractmethod
    async def reclaim_stale(
        self, consumer: str, min_idle_ms: int | None = None, *, count: int = 100
    ) -> list[Claimed]:
        """Lease to ``consumer`` up to ``count`` entries claimed by anyone at least ``min_idle_ms`` ago (default:
        the visibility timeout) and never acked: their consumer is presumed dead."""

    @abstractmethod
    async def extend(self, consumer: str, items: Iterable[Claimed]) -> int:
        """Renew the visibility timeout of entries ``consumer`` still holds (a long send waiting out rate limits
        must not look like a crash); entries reclaimed by another consumer are left alone. Returns how many."""

    @abstractmethod
    async def depth(self) -> dict[int, int]:
        """Entries per lane not yet acked or dead: waiting, delayed for a retry, or claimed."""

    @abstractmethod
    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first."""

    @abstractmethod
    async def requeue_dead(self, ids: Iterable[str] | None = None) -> int:
        """Put dead letters (all, or those ``ids``) back in their lanes with a fresh delivery count; how many."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; the queue is not used afterwards."""

    def _over_max(self, deliveries: int) -> bool:
        return self.max_deliveries is not None and deliveries > self.max_deliveries

    def _restore(self, stored: bytes, compressed: bool) -> bytes:
        return self.compressor.decompress(stored) if compressed else stored
