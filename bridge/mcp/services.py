"""What the tools share for one run of the server (its lifespan): the event store and the managed bridge process.

One EventStore (with its queue) per run, not per call: a queue holds connections (Redis, or the database
thread's), and making one costs more than the send it serves. Both are made on first use, the store inside the
running event loop (a Redis queue belongs to the loop that first uses it), so start-up pays for neither.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from bridge.ingest.store import EventStore
    from bridge.mcp.bridge_process import BridgeProcess


class Services:
    def __init__(self) -> None:
        self._store: EventStore | None = None

    @cached_property
    def bridge(self) -> BridgeProcess:
        from bridge.mcp.bridge_process import BridgeProcess

        return BridgeProcess()

    def store(self) -> EventStore:
        if self._store is None:
            from bridge.ingest.store import EventStore
            from bridge.queue import get_queue

            self._store = EventStore(get_queue())
        return self._store

    async def close(self) -> None:
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
