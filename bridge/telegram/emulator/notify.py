"""Wake coroutines waiting for a change, from any thread.

The emulator's server runs in its own event loop (often in a background thread) while a test thread may change
the state directly; ``Notifier.notify`` reaches each waiter through its own loop's ``call_soon_threadsafe``.
Waiters subscribe *before* checking their condition, so a change between the check and the wait is not lost.
"""

from __future__ import annotations

import asyncio
import threading


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Notifier:
    """A set of one-shot futures completed by ``notify``; each waiter subscribes again after waking."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[asyncio.Future[None], asyncio.AbstractEventLoop] = {}

    def subscribe(self) -> asyncio.Future[None]:
        """A future of the running loop that completes at the next ``notify``; pair with ``unsubscribe``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiters[future] = loop
        return future

    def unsubscribe(self, future: asyncio.Future[None]) -> None:
        with self._lock:
            self._waiters.pop(future, None)

    def notify(self) -> None:
        """Complete every current waiter; cheap when nobody waits (the common case on the send path)."""
        if not self._waiters:
            return
        with self._lock:
            waiters = list(self._waiters.items())
        for future, loop in waiters:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # the loop is closed: its waiter is gone with it
                self.unsubscribe(future)


async def wait_for_change(future: asyncio.Future[None], seconds: float) -> bool:
    """Wait until ``future`` completes or ``seconds`` pass; True when something changed."""
    if seconds <= 0:
        return future.done()
    try:
        await asyncio.wait_for(future, seconds)
    except TimeoutError:
        return False
    return True
