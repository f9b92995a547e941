"""The durable queue between ingest and sending: Redis Streams when REDIS_URL is set, else the database.

Both backends implement ``DurableQueue`` (bridge/queue/base.py) and pass the same tests (tests/test_queue.py).
"""

from __future__ import annotations

from typing import Any

from bridge.compression import Compressor
from bridge.queue.base import LANES, Claimed, DeadLetter, DurableQueue, NewEntry, QueueError

__all__ = ["LANES", "Claimed", "DeadLetter", "DurableQueue", "NewEntry", "QueueError", "get_queue"]


def get_queue(*, compressor: Compressor | None = None, **options: Any) -> DurableQueue:
    """A new queue on the configured backend; the caller closes it.

    ``options`` go to the backend (visibility_timeout, by default CC_TELEGRAM_VISIBILITY_TIMEOUT; max_deliveries;
    and prefix for Redis or poll_interval for the database). Pass the process's one Compressor so that live
    tuning and its counters cover every payload.
    A Redis queue's connections belong to the event loop that first uses them: make one queue per loop.
    """
    from django.conf import settings

    options.setdefault("visibility_timeout", settings.CC_TELEGRAM_VISIBILITY_TIMEOUT)
    if settings.REDIS_URL:
        from bridge.queue.redis_streams import RedisStreamsQueue

        options.setdefault("prefix", f"{settings.CC_TELEGRAM_REDIS_PREFIX}:queue")
        return RedisStreamsQueue.from_url(settings.REDIS_URL, compressor=compressor, **options)
    from bridge.queue.database import DatabaseQueue

    return DatabaseQueue(compressor=compressor, **options)
