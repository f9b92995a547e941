"""The user's side of the chat: messages and button presses that become updates for the bot.

Callable from any thread (a test may inject straight into ``EmulatorState``) and from the control API. An
injected message is stored in its chat like the bot's own (``outgoing=False``), so replies can reference it
and a chat page can show both sides.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from typing import Any

from .objects import StoredFile, chat_object, chat_type, user_object
from .state import EmulatorState

_BOT_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_])")


def _sender(state: EmulatorState, chat_id: int, user: dict[str, Any] | None) -> dict[str, Any]:
    """The human sending in ``chat_id``; in a private chat the user's id is, by default, the chat's."""
    sender = user_object(user, default_id=chat_id if chat_id > 0 else 1)
    with state.lock:
        state.users[sender["id"]] = sender
    return sender


def _file(state: EmulatorState, spec: dict[str, Any], folder: str, default_name: str) -> StoredFile:
    """A file from ``{"content_base64" | "content", "file_name", "mime_type"}``."""
    if "content_base64" in spec:
        data = base64.b64decode(spec["content_base64"])
    else:
        data = str(spec.get("content", "")).encode("utf-8")
    name = str(spec.get("file_name") or default_name)
    mime = str(spec.get("mime_type") or ("image/jpeg" if folder == "photos" else "application/octet-stream"))
    return state.store_file(data, name, mime, folder)


def inject_message(
    state: EmulatorState,
    chat_id: int,
    text: str | None = None,
    *,
    user: dict[str, Any] | None = None,
    reply_to_message_id: int | None = None,
    photo: dict[str, Any] | None = None,
    document: dict[str, Any] | None = None,
    caption: str | None = None,
    message_thread_id: int | None = None,
) -> dict[str, Any]:
    """A message from the user to the bot; returns ``{"message": ..., "update": ... or None}``.

    Raises ValueError when there is neither text nor a file. A leading ``/command`` gets its bot_command
    entity, as Telegram adds it. ``message_thread_id`` posts it in that forum topic (supergroups only).
    """
    if not text and photo is None and document is None:
        raise ValueError("a message needs text, photo or document")
    sender = _sender(state, chat_id, user)
    content: dict[str, Any] = {}
    if text:
        content["text"] = text
        command = _BOT_COMMAND.match(text)
        if command:
            content["entities"] = [{"offset": 0, "length": command.end(), "type": "bot_command"}]
    if photo is not None:
        content["photo"] = _file(state, photo, "photos", "photo.jpg").photo_sizes()
    if document is not None:
        content["document"] = _file(state, document, "documents", "document.bin").document()
    if caption and not text:
        content["caption"] = caption
    if message_thread_id and chat_type(chat_id) == "supergroup":
        content["message_thread_id"] = message_thread_id
        content["is_topic_message"] = True
    if reply_to_message_id:
        record = state.get_message(chat_id, reply_to_message_id)
        if record is not None:
            reply = dict(record.message)
            reply.pop("reply_to_message", None)
            content["reply_to_message"] = reply

    def build(message_id: int) -> dict[str, Any]:
        return {
            "message_id": message_id,
            "from": sender,
            "chat": chat_object(chat_id, sender),
            "date": int(time.time()),
            **content,
        }

    message = state.add_message(chat_id, build, outgoing=False)
    return {"message": message, "update": state.enqueue_update("message", message)}


def inject_callback(
    state: EmulatorState,
    chat_id: int,
    message_id: int,
    data: str,
    *,
    user: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A press on an inline button of message ``message_id``; returns ``{"callback_query": ..., "update": ...}``.

    The query carries the stored message as it is now; an unknown message id gives Telegram's
    InaccessibleMessage (``date`` 0).
    """
    sender = _sender(state, chat_id, user)
    record = state.get_message(chat_id, message_id)
    if record is not None:
        message = record.message
    else:
        message = {"chat": chat_object(chat_id, sender), "message_id": message_id, "date": 0}
    query = {
        "id": str(secrets.randbits(63)),
        "from": sender,
        "message": message,
        "chat_instance": str(abs(chat_id) * 2654435761 % 2**62),
        "data": data,
    }
    state.register_callback(query)
    return {"callback_query": query, "update": state.enqueue_update("callback_query", query)}
