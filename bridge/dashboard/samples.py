"""What a worker records every 10 s for the dashboard's charts: queue depth, memory, cache look-ups.

Deliveries carry their own times and latencies; these figures exist only in the running process, so they are
written down, one small row per worker per bucket, and pruned after two hours.
"""

from __future__ import annotations

import time
from datetime import timedelta

import psutil
from django.utils import timezone

from bridge.models import WorkerSample

SAMPLE_SECONDS = 10.0  # one sample per dashboard bucket
KEEP = timedelta(hours=2)

_process = psutil.Process()


def process_memory_mb() -> float:
    return round(_process.memory_info().rss / 1_048_576, 1)


class Sampler:
    """Decides when a worker samples and turns cumulative cache counters into per-sample deltas."""

    def __init__(self, worker: str, *, every: float = SAMPLE_SECONDS) -> None:
        self.worker = worker
        self.every = every
        self._last = 0.0
        self._seen = (0, 0)

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every

    def record(self, queue_depth: int, memory_mb: float, cache_stats: dict | None) -> WorkerSample:
        """Write one sample (synchronous: run it off the event loop) and drop samples older than two hours."""
        self._last = time.monotonic()
        hits = lookups = 0
        if cache_stats:
            # A look-up is a hit when either tier answered; L1 sees every look-up first.
            total_hits = cache_stats.get("l1_hit", 0) + cache_stats.get("l2_hit", 0)
            total_lookups = cache_stats.get("l1_hit", 0) + cache_stats.get("l1_miss", 0)
            hits, lookups = max(0, total_hits - self._seen[0]), max(0, total_lookups - self._seen[1])
            self._seen = (total_hits, total_lookups)
        now = timezone.now()
        sample = WorkerSample.objects.create(
            worker=self.worker,
            at=now,
            queue_depth=queue_depth,
            memory_mb=memory_mb,
            cache_hits=hits,
            cache_lookups=lookups,
        )
        WorkerSample.objects.filter(at__lt=now - KEEP).delete()
        return sample
