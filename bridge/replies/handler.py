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
from bridge.replies import callbacks, messages
from bridge.replies.inbound import ButtonPress, Inbound
from bridge.replies.messages import Intake
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
        identity = self.transport.identity
        settings, fresh = await sync_to_async(_prepare)(updates, identity.username if identity else "")
        context = Context(self.transport, self.writer, settings)
        sequences: dict[tuple[int, ...], list[tuple[Inbound, Intake | None]]] = {}
        for update, taken in fresh:
            sequences.setdefault(update.order_key, []).append((update, taken))
        await asyncio.gather(*(self._in_order(context, items) for items in sequences.values()))

    async def _in_order(self, context: Context, items: list[tuple[Inbound, Intake | None]]) -> None:
        async with self._slots:
            for item, taken in items:
                await self._one(context, item, taken)

    async def _one(self, context: Context, item: Inbound, taken: Intake | None) -> None:
        try:
            if isinstance(item, ButtonPress):
                await callbacks.handle_press(context, item)
            elif taken is not None:
                await messages.handle_message(context, item, taken)
        except DatabaseError:
            raise  # nothing was stored: fail the batch, so the poller fetches it again instead of moving on
        except Exception:
            logger.exception("handling update %s failed", item.update_id)


def _prepare(
    updates: Sequence[Inbound], bot_username: str
) -> tuple[BridgeSettings, list[tuple[Inbound, Intake | None]]]:
    """One trip to the database for the whole batch: the updates not handled before, each message's intake (its
    sender looked up, a refusal audited, a text kept for the channel sessions), then the settings: a message
    reaches a waiting session without another hop to the database thread, nor a wait for what only the answers
    after it need. A message whose intake fails for another reason than the database is logged and skipped."""
    fresh: list[tuple[Inbound, Intake | None]] = []
    for update in _unseen(updates):
        if isinstance(update, ButtonPress):
            fresh.append((update, None))
            continue
        try:
            fresh.append((update, messages.intake(update, bot_username)))
        except DatabaseError:
            raise
        except Exception:
            logger.exception("taking in update %s failed", update.update_id)
    return BridgeSettings.load(), fresh


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
