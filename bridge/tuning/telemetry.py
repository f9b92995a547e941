"""What a worker measures about itself: event-loop lag (a metric) and the samples the auto-tuner decides on."""

from __future__ import annotations

import asyncio
import time
from collections import deque

import psutil

from bridge import metrics
from bridge.tuning.tuner import Sample


class LoopLagMonitor:
    """Sleeps ``interval`` again and again and measures how late it wakes: how long the loop was kept busy.

    Every wake-up is observed in ``cc_telegram_event_loop_lag_seconds``; the gauge holds the worst of the last
    second. Ten wake-ups a second cost next to nothing and catch any stall longer than a few milliseconds.
    """

    def __init__(self, interval: float = 0.1, window: int = 10) -> None:
        self.interval = interval
        self.recent: deque[float] = deque(maxlen=window)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval)
            self.observe(max(0.0, loop.time() - started - self.interval))

    def observe(self, lag: float) -> None:
        self.recent.append(lag)
        metrics.LOOP_LAG_SECONDS.observe(lag)
        metrics.LOOP_LAG_MAX_SECONDS.set(max(self.recent))

    @property
    def worst(self) -> float:
        return max(self.recent, default=0.0)


class ProcessTelemetry:
    """Samples this process for the tuner: p99 latency of the last span, memory, CPU and 429s since last time.

    It keeps its own psutil handle, so its CPU figure covers exactly the span between two samples whoever else
    asks psutil in between (the heartbeat, /health).
    """

    def __init__(self, recent: metrics.Recent | None = None) -> None:
        self.recent = recent or metrics.RECENT
        self._process = psutil.Process()
        self._process.cpu_percent(interval=None)  # the first call only starts the measurement
        self._last = time.monotonic()
        self._throttled = self.recent.throttled

    def sample(self) -> Sample:
        now = time.monotonic()
        p99 = self.recent.p99(since=self._last)
        self._last = now
        throttled, self._throttled = self.recent.throttled - self._throttled, self.recent.throttled
        return Sample(
            at=time.time(),
            p99_latency_ms=None if p99 is None else round(p99 * 1000, 1),
            rss_mb=round(self._process.memory_info().rss / 1_048_576, 1),
            cpu_percent=self._process.cpu_percent(interval=None),
            throttled=throttled,
        )


def combine(samples: list[Sample]) -> Sample:
    """Several workers' samples of the same span as one: the worst latency, memory and CPU, all the 429s."""
    latencies = [s.p99_latency_ms for s in samples if s.p99_latency_ms is not None]
    return Sample(
        at=max(s.at for s in samples),
        p99_latency_ms=max(latencies) if latencies else None,
        rss_mb=max(s.rss_mb for s in samples),
        cpu_percent=max(s.cpu_percent for s in samples),
        throttled=sum(s.throttled for s in samples),
        workers=len(samples),
    )
