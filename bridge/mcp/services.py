"""What the tools share for one run of the server (its lifespan): the event store, the event limits and the managed
bridge process.

One EventStore (with its queue) per run, not per call: a queue holds connections (Redis, or the database
thread's), and making one costs more than the send it serves. Both are made on first use, so start-up pays for
neither; a Redis queue's asyncio client belongs to the event loop that first uses it, and its synchronous one to
the stdio send lane (bridge.mcp.lane). The event limits are the bridge settings' (the admin's Event limits), as
for event files, read again every LIMITS_TTL seconds.

On SQLite, sends are followed by a WAL checkpoint on a thread of its own (bridge.ingest.checkpoint), as the
bridge's ingest does: otherwise every ~60th send pays for SQLite's own checkpoint inside its commit, 10-60 ms.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

logger = logging.getLogger(__name__)

LIMITS_TTL = 30.0
"""Seconds the MCP server holds the settings' event limits before reading them again."""

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from bridge.events.limits import Limits
    from bridge.ingest.checkpoint import WalCheckpointer
    from bridge.ingest.store import EventStore
    from bridge.mcp.bridge_process import BridgeProcess


class Services:
    def __init__(self) -> None:
        self._store: EventStore | None = None
        self._making = threading.Lock()
        self._limits: tuple[float, Limits] | None = None  # when read, what
        self.checkpointer: WalCheckpointer | None = None  # from the first send on, on SQLite

    @cached_property
    def bridge(self) -> BridgeProcess:
        from bridge.mcp.bridge_process import BridgeProcess

        return BridgeProcess()

    def store(self) -> EventStore:
        with self._making:  # the event loop and the stdio send lane's thread (bridge.mcp.lane) both call this
            if self._store is None:
                from bridge.ingest.checkpoint import WalCheckpointer
                from bridge.ingest.store import EventStore
                from bridge.queue import get_queue

                self._store = EventStore(get_queue())
                self.checkpointer = WalCheckpointer.for_database()
                if self.checkpointer is not None:
                    self.checkpointer.start()
            return self._store

    def limits_sync(self) -> Limits:
        """The event limits of the bridge's settings (the admin's Event limits), read again after LIMITS_TTL, so
        that an MCP event is held to what a file event is. A failed read keeps the last limits (or the defaults):
        the send that follows reports the database, it is not refused for this."""
        limits = self._fresh_limits()
        if limits is None:
            from django.db import DatabaseError

            from bridge.events.limits import DEFAULT_LIMITS
            from bridge.models import BridgeSettings
            from bridge.queue.rows import drop_if_broken

            drop_if_broken()
            try:
                limits = BridgeSettings.load().event_limits()
            except DatabaseError as exc:
                limits = self._limits[1] if self._limits else DEFAULT_LIMITS
                logger.warning("could not read the event limits, keeping %s: %s", limits, exc)
            self._limits = time.monotonic(), limits
        return limits

    async def limits(self) -> Limits:
        """``limits_sync`` from the event loop: a trip to the database thread only when they are due a read."""
        return self._fresh_limits() or await sync_to_async(self.limits_sync)()

    def _fresh_limits(self) -> Limits | None:
        if self._limits is not None and time.monotonic() - self._limits[0] <= LIMITS_TTL:
            return self._limits[1]
        return None

    def stored(self) -> None:
        """Say that the store wrote (a checkpoint follows shortly, off the send's path)."""
        if self.checkpointer is not None:
            self.checkpointer.wrote()

    async def close(self) -> None:
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.stop)
            self.checkpointer = None
        if self._store is not None:
            await self._store.queue.close()
            self._store = None


@asynccontextmanager
async def lifespan(server: Any) -> AsyncIterator[Services]:
    """The services of one run, also published as ``server.running_services`` for the stdio fast path
    (bridge.mcp.frontend), which answers calls outside the SDK's request contexts."""
    shared = Services()
    server.running_services = shared
    try:
        yield shared
    finally:
        server.running_services = None
        await shared.close()


def services(ctx: Context) -> Services:
    return ctx.request_context.lifespan_context
