"""Builders for the Bot API objects the emulator returns: users, chats, files.

Chat types follow Telegram's id spaces: positive ids are private chats, ``-100...`` ids supergroups, other
negative ids basic groups.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

BOT_FIRST_NAME = "CCTelegram Emulator"


def bot_user(bot_id: int, username: str) -> dict[str, Any]:
    return {"id": bot_id, "is_bot": True, "first_name": BOT_FIRST_NAME, "username": username}


def bot_me(bot_id: int, username: str) -> dict[str, Any]:
    """getMe's answer."""
    return {
        **bot_user(bot_id, username),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


def user_object(data: dict[str, Any] | None, default_id: int) -> dict[str, Any]:
    """A (human) User from control-API input ``{id, username, first_name, last_name, language_code}``."""
    data = data or {}
    user_id = int(data.get("id") or default_id)
    user: dict[str, Any] = {
        "id": user_id,
        "is_bot": False,
        "first_name": str(data.get("first_name") or "User"),
    }
    for key in ("last_name", "username", "language_code"):
        if data.get(key):
            user[key] = str(data[key])
    return user


def chat_type(chat_id: int) -> str:
    if chat_id > 0:
        return "private"
    return "supergroup" if str(chat_id).startswith("-100") else "group"


def chat_object(chat_id: int, user: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Chat of ``chat_id``; a private chat takes its names from the user last seen in it."""
    kind = chat_type(chat_id)
    if kind != "private":
        return {"id": chat_id, "type": kind, "title": f"Group {chat_id}"}
    chat: dict[str, Any] = {"id": chat_id, "type": kind, "first_name": (user or {}).get("first_name", "User")}
    for key in ("last_name", "username"):
        if user and user.get(key):
            chat[key] = user[key]
    return chat


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file uploaded to or injected into the emulator, downloadable at ``/file/bot<token>/<file_path>``."""

    file_id: str
    file_unique_id: str
    file_path: str
    file_name: str
    mime_type: str
    data: bytes

    @classmethod
    def create(cls, data: bytes, file_name: str, mime_type: str, folder: str) -> StoredFile:
        unique = secrets.token_hex(8)
        safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in file_name) or "file"
        return cls(
            file_id=f"EMU{secrets.token_urlsafe(24)}",
            file_unique_id=f"U{unique}",
            file_path=f"{folder}/{unique}_{safe_name}",
            file_name=file_name,
            mime_type=mime_type,
            data=data,
        )

    def file_object(self) -> dict[str, Any]:
        """getFile's answer."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }

    def photo_sizes(self) -> list[dict[str, Any]]:
        """Message.photo: one size (the emulator does not decode images, so dimensions are nominal)."""
        return [
            {
                "file_id": self.file_id,
                "file_unique_id": self.file_unique_id,
                "width": 640,
                "height": 480,
                "file_size": len(self.data),
            }
        ]

    def document(self) -> dict[str, Any]:
        """Message.document."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_name": self.file_name,
            "mime_type": self.mime_type,
            "file_size": len(self.data),
        }
