"""Per-chat outboxes: what waits to be sent to one chat, urgent first, with digests for a normal backlog."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bridge.events.priority import Priority
from bridge.events.schema import Event

# A digest holds at most this many events; a larger backlog becomes several digests in a row.
MAX_DIGEST = 100


@dataclass(eq=False)
class Job:
    """One delivery waiting to be sent: a Pending record, its event, and the queue entry it belongs to."""

    delivery_pk: int
    recipient_pk: int
    chat_id: int
    event: Event
    entry: Any  # bridge.telegram.send.EntryTracker
    attempts: int
    arrived: float = field(default_factory=time.monotonic)

    @property
    def urgent(self) -> bool:
        # Approvals, critical and high-priority events never merge into digests and jump the line.
        return self.event.is_approval or self.event.priority >= Priority.HIGH


class Outbox:
    def __init__(self) -> None:
        self.urgent: deque[Job] = deque()
        self.normal: deque[Job] = deque()
        self._delayed: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self.wakeup: asyncio.Event | None = None  # set by whoever adds work while the drainer waits

    def __len__(self) -> int:
        return len(self.urgent) + len(self.normal) + len(self._delayed)

    def put(self, job: Job, *, not_before: float = 0.0) -> None:
        if not_before > time.monotonic():
            heapq.heappush(self._delayed, (not_before, next(self._seq), job))
        else:
            (self.urgent if job.urgent else self.normal).append(job)

    def take(self, digest_threshold: int) -> list[Job]:
        """The next send: one urgent job, a digest of the normal backlog when it reached the threshold, or the
        oldest normal job. Empty when nothing is due."""
        self._promote()
        if self.urgent:
            return [self.urgent.popleft()]
        if len(self.normal) >= digest_threshold:
            return [self.normal.popleft() for _ in range(min(len(self.normal), MAX_DIGEST))]
        if self.normal:
            return [self.normal.popleft()]
        return []

    def next_due_in(self) -> float | None:
        """Seconds until the earliest delayed job is due; None when nothing is delayed."""
        if not self._delayed:
            return None
        return max(0.0, self._delayed[0][0] - time.monotonic())

    def _promote(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, job = heapq.heappop(self._delayed)
            (self.urgent if job.urgent else self.normal).append(job)
