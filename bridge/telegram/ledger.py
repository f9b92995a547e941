"""The sender's books: outcomes recorded, completed events closed and their queue entries acked, in one batched
write per round.

Sends do not wait for each other's books. A chat's drainer hands over what it did and waits only until that is
written before its own next send (so a crash repeats at most one unrecorded send per chat); one task writes
everything handed over since its previous write, from every chat, in one trip to the database thread (and, on
Redis, one pipelined XACK). Four trips per event (record, finish, ack, each queued behind the others on the one database
thread) were what held the sender back under load: the ack alone took ~16 ms at 300 events/s.

Safety does not change: outcomes are written in the order they were noted (a retry's "failed" before its "sent");
an entry is acked in the same transaction as the record of its last delivery or after it, never before, so a
crash at any point resends at most what was not yet recorded as sent; and a write that fails (the database or Redis
away) is retried with backoff until it succeeds, never answered by sending again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bridge import deliveries
from bridge.queue.base import DurableQueue

logger = logging.getLogger(__name__)

# Once a message is out, recording it (database) and acking its entry (queue) are retried until they succeed,
# never answered by sending again; the pause between tries doubles up to this (seconds).
BOOKKEEPING_MAX_DELAY = 2.0


async def until_done(what: str, step: Callable[[], Awaitable[Any]]) -> None:
    """Await ``step()`` until it succeeds. For bookkeeping after a message is out: the database or Redis away for
    a while is waited out with backoff; sending again instead would deliver the message twice."""
    delay = 0.1
    while True:
        try:
            await step()
            return
        except Exception as exc:
            logger.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BOOKKEEPING_MAX_DELAY)


class Ledger:
    """Batches the sender's bookkeeping. ``note`` never waits; ``on_closed`` is awaited with the trackers of every
    round's acked entries (anything with ``.item``, the Claimed to ack, and ``.item.event_pk``)."""

    def __init__(self, queue: DurableQueue, on_closed: Callable[[list[Any]], Awaitable[None]]) -> None:
        self.queue = queue
        self.on_closed = on_closed
        self._outcomes: list[deliveries.Outcome] = []
        self._closing: list[Any] = []
        self._work = asyncio.Event()
        self._writing = False
        self._written = asyncio.Condition()
        self._task: asyncio.Task | None = None
        # Every note gets the next ticket; ``_done`` is the last ticket whose note is written.
        self._ticket = 0
        self._done = 0

    def note(self, outcomes: list[deliveries.Outcome], closed: list[Any] = ()) -> int:
        """Hand over outcomes to record and the trackers whose entries they complete (to finish and ack); the
        ticket returned is what ``written`` waits for."""
        self._outcomes += outcomes
        self._closing += closed
        self._ticket += 1
        self._work.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="ledger")
        return self._ticket

    async def written(self, ticket: int) -> None:
        """Wait until the note that returned ``ticket`` (and every note before it) is written."""
        if self._done >= ticket:
            return
        async with self._written:
            await self._written.wait_for(lambda: self._done >= ticket)

    @property
    def idle(self) -> bool:
        return not (self._outcomes or self._closing or self._writing)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything noted so far is written; False on timeout."""
        async with self._written:
            try:
                await asyncio.wait_for(self._written.wait_for(lambda: self.idle), timeout)
            except TimeoutError:
                return False
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._work.wait()
            # One turn of the event loop first: drainers whose answers are already in note theirs too, and the
            # round writes them all (a round costs the same for one outcome as for twenty).
            await asyncio.sleep(0)
            self._work.clear()
            while self._outcomes or self._closing:
                outcomes, closing, ticket = self._outcomes, self._closing, self._ticket
                self._outcomes, self._closing = [], []
                self._writing = True
                try:
                    await self._write(outcomes, closing)
                    self._done = ticket
                    await self.on_closed(closing)
                finally:
                    self._writing = False
                async with self._written:
                    self._written.notify_all()

    async def _write(self, outcomes: list[deliveries.Outcome], closing: list[Any]) -> None:
        event_pks = [tracker.item.event_pk for tracker in closing]

        def books() -> None:
            deliveries.settle(outcomes, event_pks)

        # tracker.item, read at each try: a reclaim meanwhile (see Sender._accept_all) renews the claim to ack.
        await until_done(
            f"recording {len(outcomes)} outcomes and acking {len(closing)} entries",
            lambda: self.queue.ack([tracker.item for tracker in closing], after=books),
        )
