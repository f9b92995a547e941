"""The one entry for updates, whichever way they came (the poller or the webhook view).

A batch is handled concurrently, except where order matters (`order_key`): a chat's messages keep their order
(two quick replies reach the agent as written), and presses on one message are taken in the order made; an update already handled (Telegram delivers again after a crash, or retries a webhook) is skipped by
its update_id. Responses are handed to the ResponseWriter, which stores and writes them in batches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.db import DatabaseError
from django.utils import timezone

from bridge.models import BridgeSettings, Response
from bridge.replies.inbound import ButtonPress, Inbound
from bridge.replies.response_files import ResponseWriter
from bridge.telegram.transport import TelegramTransport

logger = logging.getLogger(__name__)

# Telegram keeps an unconfirmed update for 24 hours: no repeat can come from further back.
REPEAT_WINDOW = timedelta(hours=24)
MAX_CONCURRENT = 16  # sequences handled at once: bounds connections to the Bot API and the database


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler works with: the Bot API, the response writer and the settings as the batch began."""

    transport: TelegramTransport
    writer: ResponseWriter
    settings: BridgeSettings


class UpdateHandler:
    def __init__(self, transport: TelegramTransport, writer: ResponseWriter) -> None:
        self.transport = transport
        self.writer = writer
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)

    async def handle(self, updates: Sequence[Inbound]) -> None:
        """Handle a batch. A failing update is logged and skipped, unless the database failed (DatabaseError is
        raised): then the caller must not confirm the batch, and handles it again later, skipping what was
        stored."""
        if not updates:
            return
        settings, fresh = await sync_to_async(_prepare)(updates)
        context = Context(self.transport, self.writer, settings)
        sequences: dict[tuple[int, ...], list[Inbound]] = {}
        for update in fresh:
            sequences.setdefault(update.order_key, []).append(update)
        await asyncio.gather(*(self._in_order(context, items) for items in sequences.values()))

    async def _in_order(self, context: Context, items: list[Inbound]) -> None:
        async with self._slots:
            for item in items:
                await self._one(context, item)

    async def _one(self, context: Context, item: Inbound) -> None:
        from bridge.replies import callbacks, messages

        try:
            if isinstance(item, ButtonPress):
                await callbacks.handle_press(context, item)
            else:
                await messages.handle_message(context, item)
        except DatabaseError:
            raise  # nothing was stored: fail the batch, so the poller fetches it again instead of moving on
        except Exception:
            logger.exception("handling update %s failed", item.update_id)


def _prepare(updates: Sequence[Inbound]) -> tuple[BridgeSettings, list[Inbound]]:
    """The settings and the updates not handled before, in one trip to the database."""
    return BridgeSettings.load(), _unseen(updates)


def _unseen(updates: Sequence[Inbound]) -> list[Inbound]:
    ids = [u.update_id for u in updates]
    seen = set(
        Response.objects.filter(
            update_id__in=ids, created_at__gte=timezone.now() - REPEAT_WINDOW
        ).values_list("update_id", flat=True)
    )
    if seen:
        logger.info("skipping %d updates handled before: %s", len(seen), sorted(seen))
    return [u for u in updates if u.update_id not in seen]
