"""The session's voice in the chat: reply, react and edit, sent from the MCP process under the bridge's limits.

Why not through the bridge's queue: the pipeline routes an event to every matching Recipient, while a reply goes
to the one chat it answers, and the session needs the sent message ids back at once (to edit them, or to reply
to them). So the channel sends itself, through the same TelegramTransport, waiting on the same rate limits:
with REDIS_URL the RedisRateLimiter every bridge worker shares (the per-chat 1/s and global 30/s hold across
all processes); without Redis a process-local limiter, which keeps this session's own bursts in bounds. A
failure is returned to the session as an error it can act on (retry later, shorten), never silently dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from telegram.constants import ReactionEmoji

from bridge.telegram.escape import PARSE_MODE, escape_html
from bridge.telegram.split import split_html
from bridge.telegram.transport import TelegramTransport, TransportError

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 50 * 1024 * 1024
"""Telegram's upload limit for bots."""
MAX_PHOTO_BYTES = 10 * 1024 * 1024
"""Above this Telegram refuses a photo; the image is sent as a document instead."""
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp"})
REACTIONS = frozenset(str(emoji) for emoji in ReactionEmoji)
"""The only emoji a bot may react with."""
TYPING_SECONDS = 4.0
"""Telegram shows "typing..." for 5 s, or until the bot sends to the chat: while one shows, messages arriving
need no other (a call to the Bot API each, right when the session should be busy with them)."""


class OutgoingError(Exception):
    """A send the session asked for cannot be done as asked; the message says why and what to change."""


@dataclass(frozen=True, slots=True)
class Sent:
    message_ids: list[int]


def check_files(files: list[str]) -> list[Path]:
    """The files as paths, each an existing regular file within Telegram's limit. Raises OutgoingError."""
    paths = []
    for name in files:
        path = Path(name).expanduser()
        if not path.is_file():
            raise OutgoingError(f"file not found: {name}")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise OutgoingError(f"{name} is {size / 1048576:.1f} MB; Telegram accepts files up to 50 MB")
        paths.append(path)
    return paths


def check_reaction(emoji: str) -> str:
    if emoji not in REACTIONS:
        raise OutgoingError(
            f"{emoji!r} is not one of Telegram's reaction emoji; use one of: {' '.join(sorted(REACTIONS))}"
        )
    return emoji


class Outgoing:
    """One Bot API client and rate limiter for the process, started on first use."""

    def __init__(self) -> None:
        self._transport: TelegramTransport | None = None
        self._limiter = None
        self._lock = asyncio.Lock()
        self._typing: dict[tuple[int, int | None], float] = {}  # (chat, topic) -> when its indicator was sent

    async def _ready(self) -> TelegramTransport:
        async with self._lock:
            if self._transport is None:
                from django.conf import settings

                from bridge.telegram.limits import LocalRateLimiter, RedisRateLimiter
                from bridge.telegram.send import bot_token

                transport = TelegramTransport(
                    bot_token(), base_url=settings.TELEGRAM_API_BASE_URL, pool_size=4
                )
                await transport.start()
                if settings.REDIS_URL:
                    import redis.asyncio as aioredis

                    self._limiter = RedisRateLimiter(
                        aioredis.Redis.from_url(settings.REDIS_URL),
                        prefix=f"{settings.CC_TELEGRAM_REDIS_PREFIX}:rate",
                    )
                else:
                    self._limiter = LocalRateLimiter()
                self._transport = transport
            return self._transport

    async def _call(self, chat_id: int, call):
        transport = await self._ready()
        await self._limiter.acquire(chat_id)
        try:
            return await call(transport)
        except TransportError as error:
            if error.retry_after:
                await self._limiter.penalize(chat_id, error.retry_after, global_=error.global_limit)
            raise

    async def reply(
        self,
        chat_id: int,
        text: str,
        reply_to: int | None = None,
        files: list[str] | None = None,
        thread_id: int | None = None,
    ) -> Sent:
        """Send ``text`` (plain, split into as many messages as it needs) then each file: images as photos,
        anything else as a document; all of it in forum topic ``thread_id`` if given. Raises OutgoingError for bad files,
        TransportError when Telegram refuses."""
        paths = check_files(files or [])
        sent: list[int] = []
        parts = split_html(escape_html(text)) if text else []
        for index, part in enumerate(parts):
            message = await self._call(
                chat_id,
                lambda t, part=part, first=index == 0: t.send_message(
                    chat_id,
                    part,
                    parse_mode=PARSE_MODE,
                    reply_to=reply_to if first else None,
                    thread_id=thread_id,
                ),
            )
            sent.append(message.message_id)
        for path in paths:
            photo = path.suffix.lower() in PHOTO_SUFFIXES and path.stat().st_size <= MAX_PHOTO_BYTES
            message = await self._call(
                chat_id,
                lambda t, path=path, photo=photo: (t.send_photo if photo else t.send_document)(
                    chat_id, path, thread_id=thread_id
                ),
            )
            sent.append(message.message_id)
        self._typing.pop((chat_id, thread_id), None)  # a message from the bot ends the indicator there
        return Sent(sent)

    async def react(self, chat_id: int, message_id: int, emoji: str) -> None:
        check_reaction(emoji)
        await self._call(chat_id, lambda t: t.set_reaction(chat_id, message_id, emoji))

    async def edit(self, chat_id: int, message_id: int, text: str) -> None:
        parts = split_html(escape_html(text))
        if len(parts) != 1:
            raise OutgoingError("an edited message must fit in one Telegram message (4096 characters)")
        await self._call(
            chat_id, lambda t: t.edit_message(chat_id, message_id, parts[0], parse_mode=PARSE_MODE)
        )

    async def open_topic(self, chat_id: int, name: str) -> int:
        """A new forum topic in ``chat_id``; its message_thread_id. Raises TransportError when refused."""
        return await self._call(chat_id, lambda t: t.create_forum_topic(chat_id, name))

    async def typing(self, chat_id: int, thread_id: int | None = None) -> None:
        """Show "typing..." in the chat, or in its forum topic ``thread_id``, unless it shows there already (best
        effort: an indicator is never worth an error)."""
        now, last = time.monotonic(), self._typing.get((chat_id, thread_id))
        if last is not None and now - last < TYPING_SECONDS:
            return
        self._typing[(chat_id, thread_id)] = now
        try:
            transport = await self._ready()
            await transport.send_chat_action(chat_id, "typing", thread_id=thread_id)
        except Exception as error:
            logger.debug("no typing indicator in chat %s: %s", chat_id, error)

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
