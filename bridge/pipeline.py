"""The bridge pipeline of one worker process: watcher -> ingest -> durable queue -> sender -> Telegram.

Built from steps that each do one unit of work and return (``run_once`` uses them directly); ``start`` runs them as
long-lived tasks and ``stop`` drains: the watcher stops first, what was read is stored, and the sender finishes
what it holds, so a SIGTERM loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings as django_settings

from bridge.cache import TieredCache, build_cache
from bridge.compression import Compressor
from bridge.ingest.ingestor import Ingestor
from bridge.ingest.store import EventStore
from bridge.ingest.watcher import FileSource
from bridge.models import BridgeSettings
from bridge.queue import DurableQueue, get_queue

logger = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class RunSummary:
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    claimed: int = 0


class Pipeline:
    def __init__(
        self,
        *,
        events_dir: Path | None = None,
        queue: DurableQueue | None = None,
        sender_factory=None,
        name: str | None = None,
        cache: TieredCache | None = None,
    ) -> None:
        self.name = name or worker_name()
        self.events_dir = Path(events_dir or django_settings.CC_TELEGRAM_EVENTS_DIR)
        self.compressor = Compressor()
        self.queue = queue or get_queue(compressor=self.compressor)
        self.store = EventStore(self.queue)
        self.paths: asyncio.Queue[Path] = asyncio.Queue(maxsize=100)
        self.source = FileSource(self.events_dir, self.paths)
        # Limits are the parser's defaults until the settings are applied (load_settings, before any file is read).
        self.ingestor = Ingestor(self.events_dir, self.store, self.source)
        self.sender = sender_factory(self) if sender_factory else None
        # One cache per worker: the sender's (recipients, rendered messages) holds the settings row too.
        self.cache = cache or (self.sender.cache if self.sender is not None else build_cache())
        self.settings_version = 0
        self._tasks: list[asyncio.Task] = []

    # --- settings ----------------------------------------------------------------------------------------------
    async def load_settings(self) -> BridgeSettings:
        """Read the settings row through the cache and apply it to every stage; returns it.

        The first call (start, ``run_once``) warms the cache: another worker's copy in L2 saves the database read.
        Every later call comes from a newer version known to exist (a "settings changed" message, or the heartbeat
        seeing the version move), so the cached row is dropped from both tiers first, as the recipients are on
        "recipients changed". Saving the row drops it from L2 as well (BridgeSettings.save), so a worker starting
        after a change it was not told about does not apply the old row.
        """
        key = BridgeSettings.cache_key()
        if self.settings_version:
            await self.cache.invalidate(key, shared=True)
        current = await self.cache.get_or_load(key, sync_to_async(BridgeSettings.load), shared=True)
        self.apply(current)
        return current

    def apply(self, s: BridgeSettings) -> None:
        """Apply a settings row to every stage, without a restart."""
        self.cache.apply(s)
        self.compressor.set_level(s.compression_level)
        self.compressor.set_min_bytes(s.compression_min_bytes)
        self.ingestor.batch_size = s.queue_batch_size
        self.ingestor.limits = s.event_limits()
        self.source.retune(
            debounce_ms=s.watcher_debounce_ms,
            step_ms=s.watcher_step_ms,
            backpressure_percent=s.backpressure_threshold,
        )
        if self.paths.maxsize != s.pipeline_capacity and not self._tasks:
            self.paths = asyncio.Queue(maxsize=s.pipeline_capacity)
            self.source.out = self.paths
        if self.sender is not None:
            self.sender.apply(s)
        self.settings_version = s.version

    # --- steps -------------------------------------------------------------------------------------------------
    async def ingest_waiting(self) -> RunSummary:
        """Take every file waiting in the events folder, oldest first, and store it."""
        summary = RunSummary()
        while batch := await asyncio.to_thread(self.source.scan, self.ingestor.batch_size):
            for path in batch:
                self.source.in_flight.add(path)
            result = await self.ingestor.ingest(batch)
            summary.stored += len(result.stored)
            summary.duplicates += len(result.duplicates)
            summary.quarantined += len(result.quarantined)
            if not (result.stored or result.duplicates or result.quarantined):
                break  # only files still being written or vanishing: leave them for the watcher
        return summary

    async def run_once(self) -> RunSummary:
        """Ingest what is waiting, then send until the queue and the outboxes are empty."""
        await self.load_settings()
        summary = await self.ingest_waiting()
        if self.sender is not None:
            await self.sender.start()
            try:
                while True:
                    claimed = await self.sender.claim_once(block_ms=0)
                    summary.claimed += claimed
                    if not claimed:
                        await self.sender.wait_idle()
                        if not await self.sender.claim_once(block_ms=0):
                            break
            finally:
                await self.sender.close()
        return summary

    # --- long-running ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.load_settings()
        self._tasks = [
            asyncio.create_task(self.source.run(), name="watcher"),
            asyncio.create_task(self.ingestor.run(self.paths), name="ingest"),
        ]
        if self.sender is not None:
            await self.sender.start()
            self._tasks.append(asyncio.create_task(self.sender.run(), name="sender"))
        logger.info("pipeline %s started on %s", self.name, self.events_dir)

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Drain: stop reading files, store what was read, let the sender finish what it holds."""
        self.source.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._tasks:
            await asyncio.wait(
                [self._tasks[0]], timeout=2
            )  # the watcher, which ends within one notifier step
            # Files read but not yet stored stay in the folder if the deadline passes: nothing is lost, only later.
            while (not self.paths.empty() or self.ingestor.busy) and loop.time() < deadline:
                await asyncio.sleep(0.01)
        if self.sender is not None:
            await self.sender.stop(timeout=max(0.0, deadline - loop.time()))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.sender is not None:
            await self.sender.close()
        await self.queue.close()
        logger.info("pipeline %s stopped", self.name)
