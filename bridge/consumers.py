"""Channels consumers: the bridge worker's control channel and the live dashboard.

Channel messages are at-most-once: they carry control (settings changed, retry this, send a test) and what the
dashboard shows, never events. Handlers are named after the message types they take.
"""

from __future__ import annotations

import logging

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer

logger = logging.getLogger(__name__)

WORKERS_GROUP = "bridge.workers"
DASHBOARD_GROUP = "dashboard"


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
