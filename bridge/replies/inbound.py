"""What Telegram sends the bot, parsed once at the boundary into small typed objects.

Both ways updates arrive (getUpdates in the poller, the webhook view) end here: `parse_update` takes
python-telegram-bot's `Update`, `parse_update_json` the Bot API JSON. Everything further in sees only
`ButtonPress` and `IncomingMessage`; updates the bridge does not act on (edited messages, channel posts,
messages without a sender) parse to None. Nothing here imports Django.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import telegram

ALLOWED_UPDATES = ("message", "callback_query")
"""The update kinds the bridge asks Telegram for; others are never delivered."""


@dataclass(frozen=True, slots=True)
class Sender:
    """The Telegram user behind an update."""

    id: int
    username: str = ""
    first_name: str = ""

    @property
    def display(self) -> str:
        """How messages name them: @username, else the first name, else "user <id>"."""
        if self.username:
            return f"@{self.username}"
        return self.first_name or f"user {self.id}"

    @property
    def actor(self) -> str:
        """The AuditEntry actor for them."""
        return f"telegram:{self.id}"


@dataclass(frozen=True, slots=True)
class ButtonPress:
    """A press on an inline button. `chat_id`/`message_id` name the message that carried the button (Telegram
    sets them, the client cannot); both are None for inline-mode messages, which the bridge never sends."""

    update_id: int
    query_id: str
    sender: Sender
    data: str
    chat_id: int | None
    message_id: int | None

    @property
    def order_key(self) -> tuple[int, ...]:
        """Updates with the same key are handled in order, different keys concurrently: presses on one message
        in the order they were made (the first decides), presses on different messages in parallel."""
        return (self.chat_id if self.chat_id is not None else self.sender.id, self.message_id or 0)


@dataclass(frozen=True, slots=True)
class InboundFile:
    """A photo (its largest size) or document attached to a message, as Telegram names it for getFile."""

    file_id: str
    kind: str  # "photo" or "document"
    file_name: str = ""
    size: int | None = None


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message to the bot. `message_type` is "text", or "other" for anything without text (photo, sticker, ...),
    whose `text` is then the caption or "[non-text message]" as the original bridge recorded it."""

    update_id: int
    chat_id: int
    message_id: int
    sender: Sender
    text: str
    message_type: str
    reply_to_message_id: int | None = None
    files: tuple[InboundFile, ...] = ()
    thread_id: int | None = None
    """The forum topic it was written in (message_thread_id), None outside topics."""

    @property
    def order_key(self) -> tuple[int, ...]:
        """A chat's messages are handled in the order they were sent."""
        return (self.chat_id,)

    @property
    def command(self) -> str | None:
        """The bot command it starts with, lowercased and without @botname ("/cct:mute"), or None."""
        if self.message_type != "text" or not self.text.startswith("/"):
            return None
        word = self.text.split(maxsplit=1)[0]
        return word.split("@", 1)[0].lower()


Inbound = ButtonPress | IncomingMessage


def parse_update(update: telegram.Update) -> Inbound | None:
    """The bridge's view of `update`, or None when it is nothing the bridge acts on."""
    query = update.callback_query
    if query is not None:
        message = query.message
        return ButtonPress(
            update_id=update.update_id,
            query_id=query.id,
            sender=_sender(query.from_user),
            data=query.data or "",
            chat_id=message.chat.id if message is not None else None,
            message_id=message.message_id if message is not None else None,
        )
    message = update.message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    if message.text is not None:
        text, kind = message.text, "text"
    else:
        text, kind = message.caption or "[non-text message]", "other"
    reply = message.reply_to_message
    return IncomingMessage(
        update_id=update.update_id,
        chat_id=message.chat.id,
        message_id=message.message_id,
        sender=_sender(message.from_user),
        text=text,
        message_type=kind,
        reply_to_message_id=reply.message_id if reply is not None else None,
        files=_files(message),
        thread_id=message.message_thread_id if message.is_topic_message else None,
    )


def parse_update_json(data: Any) -> Inbound | None:
    """`parse_update` for a Bot API Update object as JSON (the webhook body).

    Raises ValueError when `data` is not an Update at all (not an object, no integer update_id).
    """
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise ValueError("not a Telegram update: an object with an integer update_id was expected")
    try:
        update = telegram.Update.de_json(data, None)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"malformed Telegram update: {error!r}") from None
    return parse_update(update)


def _files(message: telegram.Message) -> tuple[InboundFile, ...]:
    files = []
    if message.photo:
        largest = message.photo[-1]
        files.append(
            InboundFile(largest.file_id, "photo", f"photo_{message.message_id}.jpg", largest.file_size)
        )
    if message.document is not None:
        document = message.document
        files.append(InboundFile(document.file_id, "document", document.file_name or "", document.file_size))
    return tuple(files)


def _sender(user: telegram.User) -> Sender:
    return Sender(id=user.id, username=user.username or "", first_name=user.first_name or "")
