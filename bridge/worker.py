"""WorkerHost: one bridge process as the rest of the system sees it.

It runs the pipeline, keeps its control consumer listening on the channel layer (restarting it if the layer
fails), writes a heartbeat (Worker row: settings version applied, queue depth), and re-reads BridgeSettings when
the version moved, both on a "settings changed" message and, because those are at-most-once, on every heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from bridge import metrics
from bridge.consumers import DASHBOARD_GROUP, BridgeWorkerConsumer
from bridge.models import BridgeSettings, Worker
from bridge.pipeline import Pipeline

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

    async def start(self) -> None:
        await self.pipeline.start()
        if self.pipeline.sender is not None:
            self.pipeline.sender.listeners.append(self._outcomes.append)
        self._tasks = [
            asyncio.create_task(self._control_loop(), name="control"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._dashboard_loop(), name="dashboard"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        await self._inbox.put({"type": "bridge.stop"})
        control = self._tasks[0]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(control), timeout=2)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
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
                version = await sync_to_async(_settings_version)()
                if version > self.pipeline.settings_version:
                    await self.settings_changed(version)
                await self._beat()
            except Exception:
                logger.exception("heartbeat failed; retrying")
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _beat(self) -> None:
        depth = await self.pipeline.queue.depth()
        for lane, count in depth.items():
            metrics.QUEUE_DEPTH.labels(lane=str(lane)).set(count)
        await sync_to_async(Worker.objects.update_or_create)(
            name=self.pipeline.name,
            defaults={
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "started_at": self.started_at,
                "heartbeat_at": timezone.now(),
                "settings_version": self.pipeline.settings_version,
                "queue_depth": sum(depth.values()),
            },
        )

    async def _dashboard_loop(self) -> None:
        """Deliveries reach the dashboard in small batches: one group message per quarter second, not per send."""
        layer = get_channel_layer()
        while True:
            await asyncio.sleep(DASHBOARD_FLUSH_SECONDS)
            if not self._outcomes or layer is None:
                continue
            batch, self._outcomes[:] = list(self._outcomes), []
            try:
                await layer.group_send(DASHBOARD_GROUP, {"type": "deliveries", "items": batch[-200:]})
            except Exception:
                logger.warning("dashboard update dropped (channel layer unavailable)")


def _settings_version() -> int:
    return (
        BridgeSettings.objects.filter(pk=BridgeSettings.SINGLETON_PK)
        .values_list("version", flat=True)
        .first()
        or 0
    )


async def _no_send(message: dict) -> None:
    """The control consumer answers nobody directly."""
