"""The one module that talks to the Telegram Bot API (through python-telegram-bot).

Contract: every method returns a plain result or raises `TransportError`, which says whether retrying can help
(`permanent`), how long Telegram asked us to wait (`retry_after`) and where a migrated group went
(`migrate_to_chat_id`). Nothing else escapes. The transport neither retries nor rate limits: the sender above
it does both (limits.py, breaker.py) and records outcomes, so this stays a thin, testable seam.

Every call goes through python-telegram-bot's Bot. Its HTTP layer, where it can be (no proxy), is a small keep-alive
pool of our own (wire.WireRequest): httpx costs ~1.3 ms of CPU per send, this a fraction of it; uploads, downloads
and long polls stay with httpx.

The token never reaches our logs: python-telegram-bot and httpx put it in request URLs, so their loggers get a
filter that masks it, and our own lines and error messages name the API by `base_url` alone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import telegram
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReactionTypeEmoji,
    ReplyParameters,
)
from telegram import error as tg_error
from telegram.request import BaseRequest, HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from bridge.telegram import wire

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
NOT_MODIFIED = "message is not modified"
# Loggers that may print request URLs, and so the token: httpx logs every request at INFO, python-telegram-bot
# its base URL at DEBUG. Logger filters see only records created on that very logger, hence every name.
_URL_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "telegram",
    "telegram.Bot",
    "telegram.ext.ExtBot",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
)

# Telegram's own per-chat limits (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
# about one message a second to a chat, twenty a minute to a group. Its 429 does not say which limit it enforces,
# so a 429 for a chat that had no call within these windows is taken for the bot-wide limit (see _ChatActivity).
CHAT_WINDOW_SECONDS = 1.0
GROUP_WINDOW_SECONDS, GROUP_WINDOW_CALLS = 60.0, 20
# Failures after which the call may still have reached Telegram, and so count against the chat's limits.
_MAYBE_DELIVERED = frozenset({"timeout", "network"})

Keyboard = list[list[dict[str, str]]]
"""Inline keyboard rows; a button is {"text", "callback_data"} or {"text", "url"}."""


class TransportError(Exception):
    """A Bot API call failed.

    `permanent`: sending the same request again will fail the same way (blocked, chat not found, bad request,
    bad token); otherwise a later retry may succeed. `retry_after`: seconds Telegram asked us to wait (429).
    `migrate_to_chat_id`: the group became this supergroup; resend there. `global_limit`: a 429 that belongs
    to no chat, so the whole bot should wait: the call had no chat, or its chat was within Telegram's per-chat
    limits (nothing sent to it in the last CHAT_WINDOW_SECONDS, nor GROUP_WINDOW_CALLS to a group in the last
    GROUP_WINDOW_SECONDS), so only the bot-wide limit can have refused it. `reason` is a short stable code for
    metrics and dead-letter records: rate_limited, migrated, blocked, chat_not_found, bad_request,
    invalid_token, conflict, timeout, network, server_error, file_error, unexpected ("error" when a fake
    transport in a test does not say).
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        reason: str = "error",
        retry_after: float | None = None,
        migrate_to_chat_id: int | None = None,
        global_limit: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.reason = reason
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id
        self.global_limit = global_limit

    @property
    def api_unavailable(self) -> bool:
        """Whether this says the Bot API itself is unwell: what a circuit breaker should count."""
        return self.reason in ("timeout", "network", "server_error")

    def __repr__(self) -> str:
        return f"TransportError({self.message!r}, permanent={self.permanent}, reason={self.reason!r})"


@dataclass(frozen=True)
class SentMessage:
    message_id: int
    chat_id: int
    date: dt.datetime


@dataclass(frozen=True)
class BotIdentity:
    id: int
    username: str


class _TokenMask(logging.Filter):
    """Replaces every registered token in log records with "<token>" (records are rewritten, never dropped)."""

    def __init__(self) -> None:
        super().__init__("cctelegram-token-mask")
        self.tokens: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.tokens:
            message = record.getMessage()
            masked = _mask(message, self.tokens)
            if masked != message:
                record.msg, record.args = masked, None
        return True


_token_mask = _TokenMask()


def _mask(text: str, tokens: set[str] | frozenset[str]) -> str:
    for token in tokens:
        text = text.replace(token, "<token>")
    return text


def _install_token_mask(token: str) -> None:
    _token_mask.tokens.add(token)
    for name in _URL_LOGGERS:
        log = logging.getLogger(name)
        if _token_mask not in log.filters:
            log.addFilter(_token_mask)


class _ChatActivity:
    """When calls to each chat were made that may have sent something: what tells a 429 for one chat (Telegram's
    per-chat limit) from one for the whole bot (its global limit), since Telegram's answer is the same for both.

    Only this process's calls are seen: a chat another worker sent to a moment ago looks quiet here, and its 429
    is then taken for the global one. The cost of that mistake is one retry_after of pause for every chat; the
    shared limiter keeps such a per-chat 429 rare (it spaces every worker's sends to a chat).
    """

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        # chat -> start times of its latest calls: the last one for a private chat, a group window's worth for a
        # group (a bounded deque each; chats are the bot's recipients, a small set).
        self._calls: dict[int, deque[float]] = {}

    def called(self, chat_id: int, started: float) -> None:
        calls = self._calls.get(chat_id)
        if calls is None:
            calls = self._calls[chat_id] = deque(maxlen=GROUP_WINDOW_CALLS if chat_id < 0 else 1)
        calls.append(started)

    def quiet(self, chat_id: int, started: float) -> bool:
        """Whether a call to ``chat_id`` started at ``started`` was within Telegram's per-chat limits: no other
        call to the chat in the CHAT_WINDOW_SECONDS before it (nor since), and for a group fewer than
        GROUP_WINDOW_CALLS in the GROUP_WINDOW_SECONDS before it."""
        calls = self._calls.get(chat_id)
        if not calls:
            return True
        if any(at > started - CHAT_WINDOW_SECONDS for at in calls):
            return False
        return len(calls) < GROUP_WINDOW_CALLS or calls[0] <= started - GROUP_WINDOW_SECONDS


def _seconds(value: int | float | dt.timedelta) -> float:
    """retry_after arrives as int seconds or, with PTB_TIMEDELTA set (the future default), a timedelta."""
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value)


_MALFORMED = (KeyError, TypeError, AttributeError, ValueError)


def _malformed(error: Exception) -> TransportError:
    return TransportError(f"malformed inline keyboard: {error!r}", permanent=True, reason="bad_request")


def _markup(rows: Keyboard | None) -> InlineKeyboardMarkup | None:
    """The keyboard for python-telegram-bot; TransportError(permanent, "bad_request") if it is malformed."""
    if rows is None:
        return None
    try:
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(b["text"], callback_data=b.get("callback_data"), url=b.get("url"))
                    for b in row
                ]
                for row in rows
            ]
        )
    except _MALFORMED as error:
        raise _malformed(error) from error


class TelegramTransport:
    """One `telegram.Bot` with a pooled HTTP client, sized by `pool_size` (connections to the Bot API).

    Long polls (`get_updates`) use a separate one-connection client, so a poll never holds a send's slot.
    Call `start()` before anything else and `close()` at the end (or use `async with`).
    """

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        base_file_url: str | None = None,
        pool_size: int = 8,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        write_timeout: float = 10.0,
        pool_timeout: float = 5.0,
        media_write_timeout: float = 30.0,
    ) -> None:
        """Raises TransportError(permanent) when the token is empty or malformed for python-telegram-bot."""
        self.base_url = base_url
        self.identity: BotIdentity | None = None
        if token:
            _install_token_mask(token)
        self._tokens = frozenset({token}) if token else frozenset()
        self._activity = _ChatActivity()
        timeouts = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "write_timeout": write_timeout,
            "pool_timeout": pool_timeout,
        }
        request: BaseRequest = HTTPXRequest(
            connection_pool_size=pool_size, media_write_timeout=media_write_timeout, **timeouts
        )
        if wire.supported(base_url):
            pool = wire.KeepAlivePool(base_url, size=pool_size, **timeouts)
            request = wire.WireRequest(pool, base_url, other=request)
        poll_request = HTTPXRequest(connection_pool_size=1, **timeouts)
        try:
            self.bot = telegram.Bot(
                token,
                base_url=base_url,
                base_file_url=base_file_url or _file_url(base_url),
                request=request,
                get_updates_request=poll_request,
            )
        except tg_error.TelegramError as error:
            raise self._translate(error, chat_id=None) from None

    async def __aenter__(self) -> TelegramTransport:
        try:
            await self.start()
        except BaseException:
            await self.close()  # the pools opened before getMe failed
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> BotIdentity:
        """Open the connection pool and check the token with getMe; return who the bot is.

        Raises TransportError(permanent, reason="invalid_token") when Telegram does not know the token.
        """
        await self._call(self.bot.initialize(), chat_id=None)
        user = self.bot.bot
        self.identity = BotIdentity(user.id, user.username or "")
        logger.info("Bot API at %s: signed in as @%s", self.base_url, self.identity.username)
        return self.identity

    async def close(self) -> None:
        """Close the connection pools. Never raises for network reasons: there is nothing left to do."""
        try:
            await self.bot.shutdown()
        except tg_error.TelegramError as error:
            logger.debug("closing the Bot API client: %s", self._safe(str(error)))

    async def send_message(
        self,
        chat_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: Keyboard | None = None,
        reply_to: int | None = None,
        thread_id: int | None = None,
        link_preview: bool = False,
    ) -> SentMessage:
        """Send a text message. A missing `reply_to` message is ignored rather than failing the send."""
        message = await self._call(
            self.bot.send_message(
                chat_id,
                text,
                parse_mode=parse_mode,
                reply_markup=_markup(reply_markup),
                reply_parameters=_reply(reply_to),
                message_thread_id=thread_id,
                link_preview_options=None if link_preview else LinkPreviewOptions(is_disabled=True),
            ),
            chat_id=chat_id,
        )
        return SentMessage(message.message_id, message.chat_id, message.date)

    async def edit_message(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: Keyboard | None = None,
        link_preview: bool = False,
    ) -> bool:
        """Replace a message's text (and keyboard: None removes it). False when it was already exactly so."""
        return await self._edit(
            self.bot.edit_message_text(
                text,
                chat_id=chat_id,
                message_id=message_id,
                parse_mode=parse_mode,
                reply_markup=_markup(reply_markup),
                link_preview_options=None if link_preview else LinkPreviewOptions(is_disabled=True),
            ),
            chat_id,
        )

    async def edit_reply_markup(self, chat_id: int, message_id: int, reply_markup: Keyboard | None) -> bool:
        """Replace (None: remove) a message's inline keyboard. False when it was already exactly so."""
        return await self._edit(
            self.bot.edit_message_reply_markup(
                chat_id=chat_id, message_id=message_id, reply_markup=_markup(reply_markup)
            ),
            chat_id,
        )

    async def answer_callback(
        self, callback_query_id: str, text: str | None = None, *, show_alert: bool = False
    ) -> None:
        """Stop the button's spinner, optionally with a toast (or an alert) for the user."""
        await self._call(
            self.bot.answer_callback_query(callback_query_id, text=text, show_alert=show_alert), chat_id=None
        )

    async def send_chat_action(
        self, chat_id: int, action: str = "typing", *, thread_id: int | None = None
    ) -> None:
        """Show ``action`` ("typing"...) in the chat, or in its forum topic ``thread_id``."""
        await self._call(
            self.bot.send_chat_action(chat_id, action, message_thread_id=thread_id), chat_id=chat_id
        )

    async def set_reaction(self, chat_id: int, message_id: int, emoji: str | None) -> None:
        """React to a message with one emoji (None clears the bot's reaction)."""
        reaction = [ReactionTypeEmoji(emoji)] if emoji else []
        await self._call(self.bot.set_message_reaction(chat_id, message_id, reaction), chat_id=chat_id)

    async def create_forum_topic(self, chat_id: int, name: str) -> int:
        """Open a topic named ``name`` in the forum supergroup ``chat_id``; returns its message_thread_id."""
        topic = await self._call(self.bot.create_forum_topic(chat_id, name[:128]), chat_id=chat_id)
        return topic.message_thread_id

    async def send_document(
        self,
        chat_id: int,
        path: str | Path,
        caption: str | None = None,
        *,
        parse_mode: str | None = None,
        thread_id: int | None = None,
    ) -> SentMessage:
        """Upload a local file as a document (into forum topic ``thread_id`` if given). Raises
        TransportError(permanent, "file_error") if unreadable."""
        return await self._upload(self.bot.send_document, chat_id, path, caption, parse_mode, thread_id)

    async def send_photo(
        self,
        chat_id: int,
        path: str | Path,
        caption: str | None = None,
        *,
        parse_mode: str | None = None,
        thread_id: int | None = None,
    ) -> SentMessage:
        """Upload a local image as a photo (into forum topic ``thread_id`` if given). Raises
        TransportError(permanent, "file_error") if unreadable."""
        return await self._upload(self.bot.send_photo, chat_id, path, caption, parse_mode, thread_id)

    async def _upload(
        self,
        method: Callable[..., Awaitable[telegram.Message]],
        chat_id: int,
        path: str | Path,
        caption: str | None,
        parse_mode: str | None,
        thread_id: int | None,
    ) -> SentMessage:
        """Read ``path`` off the event loop and send it with ``method`` (the Bot's send_photo / send_document)."""
        path = Path(path)
        data = await self._read(path)
        message = await self._call(
            method(
                chat_id,
                data,
                filename=path.name,
                caption=caption,
                parse_mode=parse_mode,
                message_thread_id=thread_id,
            ),
            chat_id=chat_id,
        )
        return SentMessage(message.message_id, message.chat_id, message.date)

    async def get_updates(
        self,
        offset: int | None = None,
        timeout: int = 0,
        allowed_updates: Sequence[str] | None = None,
    ) -> list[telegram.Update]:
        """Long-poll for updates (`timeout` seconds). A 409 (another poller, or a webhook is set) is
        TransportError(reason="conflict", permanent=False): it clears when the other side stops."""
        updates = await self._call(
            self.bot.get_updates(
                offset=offset,
                timeout=timeout,
                allowed_updates=list(allowed_updates) if allowed_updates else None,
            ),
            chat_id=None,
        )
        return list(updates)

    async def set_webhook(
        self, url: str, secret: str | None = None, *, allowed_updates: Sequence[str] | None = None
    ) -> None:
        await self._call(
            self.bot.set_webhook(
                url, secret_token=secret, allowed_updates=list(allowed_updates) if allowed_updates else None
            ),
            chat_id=None,
        )

    async def delete_webhook(self, *, drop_pending_updates: bool = False) -> None:
        await self._call(self.bot.delete_webhook(drop_pending_updates=drop_pending_updates), chat_id=None)

    # --- the seam ------------------------------------------------------------------------------------------

    async def _call(self, call: Awaitable[T], *, chat_id: int | None) -> T:
        started = time.monotonic()
        try:
            result = await call
        except tg_error.TelegramError as error:
            translated = self._judge(self._translate(error, chat_id=chat_id), chat_id, started)
            # An error that quotes the token must not travel on as a cause: a logged traceback prints causes.
            raise translated from (None if self._quotes_token(error) else error)
        except Exception as error:
            # Not Telegram's answer: a bug or an unforeseen library failure. Retrying would repeat it.
            raise TransportError(
                self._safe(f"unexpected {type(error).__name__}: {error}"), permanent=True, reason="unexpected"
            ) from error
        if chat_id is not None:
            self._activity.called(chat_id, started)
        return result

    def _judge(self, error: TransportError, chat_id: int | None, started: float) -> TransportError:
        """Tell a 429 of the bot-wide limit from a chat's own (see _ChatActivity), and count a call that may have
        reached Telegram against its chat."""
        if chat_id is None:
            return error
        if error.retry_after and not error.global_limit:
            error.global_limit = self._activity.quiet(chat_id, started)
        elif error.reason in _MAYBE_DELIVERED:
            self._activity.called(chat_id, started)
        return error

    async def _edit(self, call: Awaitable[Any], chat_id: int) -> bool:
        try:
            await self._call(call, chat_id=chat_id)
        except TransportError as error:
            if error.reason == "bad_request" and NOT_MODIFIED in error.message.lower():
                return False
            raise
        return True

    async def _read(self, path: Path) -> bytes:
        try:
            # Off the event loop: a large file would stall every other send.
            return await asyncio.to_thread(path.read_bytes)
        except OSError as error:
            raise TransportError(
                f"cannot read {path}: {error.strerror}", permanent=True, reason="file_error"
            ) from error

    def _quotes_token(self, error: BaseException) -> bool:
        seen: BaseException | None = error
        while seen is not None:
            if any(token in str(seen) for token in self._tokens):
                return True
            seen = seen.__cause__ or seen.__context__
        return False

    def _safe(self, text: str) -> str:
        return _mask(text, self._tokens)

    def _translate(self, error: tg_error.TelegramError, *, chat_id: int | None) -> TransportError:
        """Map a python-telegram-bot error onto TransportError. Order matters: subclasses before bases."""
        text = self._safe(error.message)
        if isinstance(error, tg_error.RetryAfter):
            with warnings.catch_warnings():
                # The int form is deprecated in favour of timedelta; we accept both.
                warnings.simplefilter("ignore", PTBDeprecationWarning)
                retry_after = _seconds(error.retry_after)
            return TransportError(
                text,
                permanent=False,
                reason="rate_limited",
                retry_after=retry_after,
                global_limit=chat_id is None,
            )
        if isinstance(error, tg_error.ChatMigrated):
            return TransportError(
                text, permanent=False, reason="migrated", migrate_to_chat_id=int(error.new_chat_id)
            )
        if isinstance(error, tg_error.Forbidden):
            return TransportError(text, permanent=True, reason="blocked")
        if isinstance(error, tg_error.InvalidToken | tg_error.EndPointNotFound):
            return TransportError(
                f"the Bot API at {self.base_url} rejected the bot token ({text})",
                permanent=True,
                reason="invalid_token",
            )
        if isinstance(error, tg_error.Conflict):
            return TransportError(
                f"conflict: another getUpdates consumer or a webhook is active for this bot ({text})",
                permanent=False,
                reason="conflict",
            )
        if isinstance(error, tg_error.BadRequest):
            # Told apart because the caller disables a recipient whose chat is gone, but not one whose
            # message was merely malformed.
            reason = "chat_not_found" if "chat not found" in text.lower() else "bad_request"
            return TransportError(text, permanent=True, reason=reason)
        if isinstance(error, tg_error.TimedOut):
            # The request may have reached Telegram: the caller's idempotency decides whether to resend.
            return TransportError(text, permanent=False, reason="timeout")
        if isinstance(error, tg_error.NetworkError):
            # python-telegram-bot raises NetworkError both for connection failures and for 5xx answers,
            # which carry Telegram's description instead of httpx's exception name.
            connection = isinstance(error, wire.WireNetworkError) or text.startswith(
                ("httpx.", "Unknown error in HTTP")
            )
            reason = "network" if connection else "server_error"
            return TransportError(text, permanent=False, reason=reason)
        return TransportError(text, permanent=True, reason="unexpected")


def _file_url(base_url: str) -> str:
    """Telegram serves files beside the API: https://host/bot -> https://host/file/bot."""
    root, _, last = base_url.rstrip("/").rpartition("/")
    return f"{root}/file/{last}"


def _reply(message_id: int | None) -> ReplyParameters | None:
    if message_id is None:
        return None
    return ReplyParameters(message_id, allow_sending_without_reply=True)
