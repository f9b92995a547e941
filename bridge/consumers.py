"""Channels consumers: the bridge worker's control channel and the live dashboard.

Channel messages are at-most-once: they carry control (settings changed, retry this, send a test) and what the
dashboard shows, never events. Handlers are named after the message types they take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from bridge.dashboard import feed, stats

logger = logging.getLogger(__name__)

WORKERS_GROUP = "bridge.workers"
DASHBOARD_GROUP = "dashboard"
# Closing before the handshake is accepted refuses it (HTTP 403); 4401 tells a test client why.
UNAUTHORIZED = 4401


class BridgeWorkerConsumer(AsyncConsumer):
    """Hosts one bridge pipeline: starts and stops it and routes control messages to it.

    Made by ``bridge.worker.WorkerHost``, which feeds it ``bridge.start`` and ``bridge.stop`` and keeps it alive;
    every other message arrives through the group all workers join.
    """

    def __init__(self, host) -> None:
        super().__init__()
        self.host = host

    async def bridge_start(self, message: dict) -> None:
        await self.channel_layer.group_add(WORKERS_GROUP, self.channel_name)
        self.host.control_channel = self.channel_name

    async def bridge_stop(self, message: dict) -> None:
        await self.channel_layer.group_discard(WORKERS_GROUP, self.channel_name)
        raise StopConsumer

    async def settings_changed(self, message: dict) -> None:
        await self.host.settings_changed(int(message.get("version", 0)))

    async def recipients_changed(self, message: dict) -> None:
        await self.host.recipients_changed()

    async def delivery_retry(self, message: dict) -> None:
        await self.host.retry_event(int(message["event_pk"]))

    async def test_send(self, message: dict) -> None:
        await self.host.send_test(int(message["chat_id"]), str(message.get("text", "")))


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    """The live dashboard of one staff user: deliveries as workers report them, and the figures of the last hour.

    Sends ``history`` (the latest deliveries) and a full ``stats`` snapshot on connect, forwards every
    ``deliveries`` batch and ``tuner`` change of the dashboard group, and sends a ``stats`` snapshot of the last minute every
    ``stats_seconds``. Anonymous and non-staff users are refused at the handshake.
    """

    stats_seconds = 5.0

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not (user is not None and user.is_authenticated and user.is_staff):
            await self.close(code=UNAUTHORIZED)
            return
        await self.channel_layer.group_add(DASHBOARD_GROUP, self.channel_name)
        await self.accept()
        await self.send_json({"type": "history", "items": await recent_deliveries()})
        await self.send_json(await stats_snapshot(tail=False))
        self._ticker = asyncio.create_task(self._tick())

    async def disconnect(self, code: int) -> None:
        ticker = getattr(self, "_ticker", None)
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        await self.channel_layer.group_discard(DASHBOARD_GROUP, self.channel_name)

    async def deliveries(self, message: dict) -> None:
        await self.send_json({"type": "deliveries", "items": message["items"]})

    async def tuner(self, message: dict) -> None:
        """The auto-tuner changed settings (bridge.tuning.runner): which knobs, from what to what, and why."""
        await self.send_json(
            {
                "type": "tuner",
                "version": message["version"],
                "actor": message["actor"],
                "changes": message["changes"],
            }
        )

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.stats_seconds)
            try:
                await self.send_json(await stats_snapshot(tail=True))
            except Exception:
                # A database hiccup costs one refresh, not the connection.
                logger.exception(
                    "dashboard figures could not be computed; next try in %s s", self.stats_seconds
                )


@database_sync_to_async
def recent_deliveries() -> list[dict]:
    return feed.recent()


@database_sync_to_async
def stats_snapshot(*, tail: bool) -> dict:
    return stats.snapshot(tail=tail)
