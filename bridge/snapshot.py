"""A costly figure computed at most once per ``max_age`` seconds, and once only for concurrent askers.

/health and /metrics are polled by load balancers, monitors and Prometheus, at times hundreds of times a second;
their answers cost milliseconds each (database aggregates, rendering the registry), and an answer a second old is
as good as a fresh one to a monitor. Askers who come while a computation is in flight wait for that one
computation rather than starting their own, so a burst of requests costs one computation, not one each.

Unlike ``TieredCache.get_or_load`` (bridge/cache.py), which loads in the first caller's own task, the computation
here is a task of its own: a probe whose client hangs up mid-computation does not fail the requests waiting on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Snapshot(Generic[T]):
    """The latest value of ``compute()``; ``max_age`` (seconds, counted from the start of its computation) may be
    changed at any time, 0 recomputes for every asker who does not find a computation in flight.

    A failed computation is not kept: its error goes to the askers who waited for it, and the next asker tries
    again. An asker who is cancelled (a client that hangs up) does not cancel the computation the others wait for.
    """

    def __init__(self, compute: Callable[[], Awaitable[T]], max_age: float) -> None:
        self.compute = compute
        self.max_age = max_age
        self._value: T | None = None
        self._taken_at: float | None = None  # monotonic start of the computation that gave _value
        self._pending: asyncio.Task[T] | None = None

    async def get(self) -> T:
        if self._taken_at is not None and time.monotonic() - self._taken_at < self.max_age:
            return self._value  # type: ignore[return-value]
        pending = self._pending
        # A task of another event loop (a test's loop that has gone) cannot be awaited from this one.
        if pending is None or pending.get_loop() is not asyncio.get_running_loop():
            pending = self._pending = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(pending)

    def forget(self) -> None:
        """Drop the kept value: the next asker computes a fresh one."""
        self._taken_at = None

    async def _refresh(self) -> T:
        started = time.monotonic()
        try:
            value = await self.compute()
        finally:
            if self._pending is asyncio.current_task():
                self._pending = None
        self._value, self._taken_at = value, started
        return value
