"""Per-client rate limiting for MCP tool calls: a token bucket per client.

Generous on purpose: an agent reporting a big refactor may fire a few hundred calls in a burst, and refusing
those would lose its reports (the original refused every call after the 100th in a minute). The limit is
there to stop a runaway loop from flooding the owner's Telegram, which the delivery limits would otherwise
absorb only by falling ever further behind. Defaults: 50 calls/s sustained, bursts of 500.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_RATE_PER_SECOND = 50.0
DEFAULT_BURST = 500
# Buckets of clients idle this long are full again anyway: dropping them bounds memory on a long-lived server.
_IDLE_SECONDS = 600.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """``allow(client)`` takes one token from the client's bucket. Thread-safe: the event loop and the stdio send
    lane's thread (bridge.mcp.lane) both call it."""

    rate_per_second: float = DEFAULT_RATE_PER_SECOND
    burst: int = DEFAULT_BURST
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _last_sweep: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.rate_per_second <= 0 or self.burst < 1:
            raise ValueError("the MCP rate limit needs a positive rate and a burst of at least 1")

    def allow(self, client: str) -> float | None:
        """None when the call may go ahead; otherwise the seconds until it would."""
        with self._lock:
            return self._take(client)

    def _take(self, client: str) -> float | None:
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = _Bucket(float(self.burst), now)
            self._sweep(now)
        else:
            bucket.tokens = min(
                float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate_per_second
            )
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self.rate_per_second

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < _IDLE_SECONDS:
            return
        self._last_sweep = now
        for client in [c for c, b in self._buckets.items() if now - b.updated > _IDLE_SECONDS]:
            del self._buckets[client]


def from_settings() -> RateLimiter:
    """The limiter configured by MCP_RATE_PER_SECOND and MCP_RATE_BURST (Django settings, else the environment)."""
    from django.conf import settings

    from cctelegram.env import env_int

    rate = getattr(settings, "MCP_RATE_PER_SECOND", None)
    if rate is None:
        rate = env_int("MCP_RATE_PER_SECOND", int(DEFAULT_RATE_PER_SECOND), minimum=1)
    burst = getattr(settings, "MCP_RATE_BURST", None)
    if burst is None:
        burst = env_int("MCP_RATE_BURST", DEFAULT_BURST, minimum=1)
    return RateLimiter(rate_per_second=float(rate), burst=int(burst))
