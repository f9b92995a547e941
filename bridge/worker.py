"""WorkerHost: one bridge process as the rest of the system sees it.

It runs the pipeline, keeps its control consumer listening on the channel layer (restarting it if the layer
fails), writes a heartbeat (Worker row: settings version applied, queue depth), and re-reads BridgeSettings when
the version moved, both on a "settings changed" message and, because those are at-most-once, on every heartbeat.
It also measures its event-loop lag and runs the auto-tuner (which acts only when enabled, in one worker).

An idle worker still beats every HEARTBEAT_SECONDS, so a beat is kept cheap: one psutil read, one trip to the
database thread (one UPDATE of the Worker row, one read of the settings version), and the dashboard loop sleeps
until there is a delivery to show instead of waking four times a second to find none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connections
from django.utils import timezone

from bridge import metrics
from bridge.consumers import DASHBOARD_GROUP, BridgeWorkerConsumer
from bridge.dashboard.feed import add_titles
from bridge.dashboard.samples import Sampler
from bridge.models import BridgeSettings, Worker
from bridge.pipeline import Pipeline
from bridge.tuning.runner import AutoTuner
from bridge.tuning.telemetry import LoopLagMonitor

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
DASHBOARD_FLUSH_SECONDS = 0.25


class WorkerHost:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.control_channel: str | None = None
        self.started_at = timezone.now()
        self._inbox: asyncio.Queue[dict] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self._outcomes: list[dict] = []
        self._outcomes_waiting = asyncio.Event()
        self._hostname = socket.gethostname()
        self.sampler = Sampler(pipeline.name)
        self.replies = None  # bridge.replies.service.Replies, when this worker sends (and so hears answers)
        self.loop_lag = LoopLagMonitor()
        self.tuner = AutoTuner(pipeline.name, applied=self.settings_changed)

    async def start(self) -> None:
        await self.pipeline.start()
        if self.pipeline.sender is not None:
            self.pipeline.sender.listeners.append(self._outcome)
            # Imported here: an ingest-only worker needs no Bot API client (see run_bridge --no-send).
            from bridge.replies.service import build_replies

            self.replies = build_replies(self.pipeline.sender.transport, self.pipeline.name)
            await self.replies.start()
        self._tasks = [
            asyncio.create_task(self._control_loop(), name="control"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._dashboard_loop(), name="dashboard"),
            asyncio.create_task(self.loop_lag.run(), name="loop lag"),
            asyncio.create_task(self.tuner.run(), name="auto-tuner"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        await self._inbox.put({"type": "bridge.stop"})
        if self._tasks:  # not there when stopped while still starting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._tasks[0]), timeout=2)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.tuner.close()
        if self.replies is not None:
            await self.replies.stop()  # before the pipeline closes the transport the replies share
        await self.pipeline.stop()
        await sync_to_async(Worker.objects.filter(name=self.pipeline.name).delete)()

    # --- control -----------------------------------------------------------------------------------------------
    async def _control_loop(self) -> None:
        while not self._stopping:
            consumer = BridgeWorkerConsumer(self)
            await self._inbox.put({"type": "bridge.start"})
            try:
                await consumer({"type": "channel", "channel": "bridge.worker"}, self._inbox.get, _no_send)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "control channel failed; reconnecting in 1 s (settings still apply via heartbeat)"
                )
                await asyncio.sleep(1)
            else:
                return

    async def settings_changed(self, version: int) -> None:
        if version > self.pipeline.settings_version:
            current = await self.pipeline.load_settings()
            if self.replies is not None:
                self.replies.apply(current)
            metrics.SETTINGS_VERSION.set(current.version)
            logger.info("applied settings version %s", current.version)
            await self._beat()

    async def recipients_changed(self) -> None:
        if self.pipeline.sender is not None:
            await self.pipeline.sender.forget_targets()

    async def retry_event(self, event_pk: int) -> None:
        from bridge.operations import requeue_event

        await requeue_event(self.pipeline.queue, event_pk)

    async def send_test(self, chat_id: int, text: str) -> None:
        if self.pipeline.sender is not None:
            await self.pipeline.sender.send_test(chat_id, text)

    # --- heartbeat and dashboard -------------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                version = await self._beat()
                if version > self.pipeline.settings_version:
                    await self.settings_changed(version)
            except Exception:
                logger.exception("heartbeat failed; retrying")
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _beat(self) -> int:
        """Write the Worker row (and, when due, a dashboard sample); returns the settings version now stored."""
        depth = await self.pipeline.queue.depth()
        queued = sum(depth.values())
        metrics.set_queue_depth(depth)
        metrics.SETTINGS_VERSION.set(self.pipeline.settings_version)
        memory_mb = round(metrics.sample_process()[0], 1)
        row = {
            "hostname": self._hostname,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "heartbeat_at": timezone.now(),
            "settings_version": self.pipeline.settings_version,
            "queue_depth": queued,
            "memory_mb": memory_mb,
            "control_channel": self.control_channel or "",
        }
        sample = None
        if self.sampler.due():
            sender = self.pipeline.sender
            sample = (queued, memory_mb, dict(sender.cache.stats) if sender is not None else None)
        return await sync_to_async(_write_beat)(self.pipeline.name, row, self.sampler, sample)

    def _outcome(self, item: dict) -> None:
        """A sender listener (called on the loop): keep the delivery for the next dashboard batch."""
        self._outcomes.append(item)
        self._outcomes_waiting.set()

    async def _dashboard_loop(self) -> None:
        """Deliveries reach the dashboard in small batches: at most one group message per quarter second, not one
        per send; while nothing is sent the loop sleeps on an event instead of polling."""
        layer = get_channel_layer()
        while True:
            await self._outcomes_waiting.wait()
            self._outcomes_waiting.clear()
            batch, self._outcomes[:] = list(self._outcomes), []
            if batch and layer is not None:
                try:
                    batch = await sync_to_async(add_titles)(batch[-200:])
                    await layer.group_send(DASHBOARD_GROUP, {"type": "deliveries", "items": batch})
                except Exception:
                    logger.warning("dashboard update dropped (channel layer unavailable)")
            await asyncio.sleep(DASHBOARD_FLUSH_SECONDS)


def _write_beat(name: str, row: dict, sampler: Sampler, sample: tuple | None) -> int:
    """A beat's database work in one trip to the database thread; returns the stored settings version.

    The row is written with one UPDATE (update_or_create would read it first, in a transaction: four statements
    every two seconds for nothing); it is created only when missing (first beat, or deleted by an operator).
    """
    _drop_broken_connections()
    if not Worker.objects.filter(name=name).update(**row):
        Worker.objects.update_or_create(name=name, defaults=row)
    if sample is not None:
        sampler.record(*sample)
    return _settings_version()


def _drop_broken_connections() -> None:
    """Close database connections that failed and no longer answer, so that the next query reconnects.

    Django does this at request boundaries; a worker is one request that never ends, so without it a database
    restart would leave every later query of this process failing on the dead connection. Run on the thread that
    does the process's database work (sync_to_async's), every heartbeat: recovery within HEARTBEAT_SECONDS.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and conn.errors_occurred and not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


def _settings_version() -> int:
    return (
        BridgeSettings.objects.filter(pk=BridgeSettings.SINGLETON_PK)
        .values_list("version", flat=True)
        .first()
        or 0
    )


async def _no_send(message: dict) -> None:
    """The control consumer answers nobody directly."""
