"""Which worker tunes: the auto-tuner runs in one worker at a time, so that two tuners never fight over a knob.

With Redis it is the replies poller's kind of lease (``SET key holder NX PX``, compare-and-set renewal), under a
key of its own. Without Redis the oldest live worker tunes: the Worker rows already carry a heartbeat every 2 s,
so when that worker stops (its row is deleted) or dies (its heartbeat goes stale) the next oldest takes over.
Either way a brief overlap is harmless: a decision and its change happen in one transaction that re-reads the
tuner's last changes, so a second tuner sees the first one's change and waits out the dwell.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from bridge.health import WORKER_STALE
from bridge.models import Worker
from bridge.replies.lease import Lease, RedisLease


class OldestWorkerLease:
    """Held by the live worker that started first (ties broken by name)."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        self.ttl = WORKER_STALE.total_seconds()

    async def acquire(self) -> bool:
        return await sync_to_async(self._oldest)() == self.holder

    async def release(self) -> None:
        """Nothing to give back: a stopping worker deletes its Worker row."""

    async def close(self) -> None:
        """Nothing to close."""

    def _oldest(self) -> str | None:
        return (
            Worker.objects.filter(heartbeat_at__gte=timezone.now() - WORKER_STALE)
            .order_by("started_at", "name")
            .values_list("name", flat=True)
            .first()
        )


def tuner_lease(holder: str, *, ttl: float) -> Lease:
    if settings.REDIS_URL:
        return RedisLease(
            settings.REDIS_URL, f"{settings.CC_TELEGRAM_REDIS_PREFIX}:tuner:lease", holder, ttl=ttl
        )
    return OldestWorkerLease(holder)
