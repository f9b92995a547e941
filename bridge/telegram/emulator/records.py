"""The records EmulatorState keeps: messages, chat settings, the webhook, callback queries, the call log."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from .errors import CHAT_NOT_FOUND, bad_request, forbidden

CHAT_STATUSES = ("ok", "blocked", "not_found", "migrated", "kicked", "deactivated")


@dataclass(slots=True)
class MessageRecord:
    """A message in a chat; ``seq`` orders creation, ``version`` the last change (edit or delete)."""

    seq: int
    version: int
    chat_id: int
    message: dict[str, Any]
    outgoing: bool
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "version": self.version,
            "chat_id": self.chat_id,
            "outgoing": self.outgoing,
            "deleted": self.deleted,
            "message": self.message,
        }


@dataclass(slots=True)
class ChatConfig:
    status: str = "ok"
    migrate_to_chat_id: int | None = None

    def check(self) -> None:
        """Raise Telegram's error for a chat in this state."""
        if self.status == "blocked":
            raise forbidden("bot was blocked by the user")
        if self.status == "kicked":
            raise forbidden("bot was kicked from the group chat")
        if self.status == "deactivated":
            raise forbidden("user is deactivated")
        if self.status == "not_found":
            raise bad_request(CHAT_NOT_FOUND)
        if self.status == "migrated":
            raise bad_request(
                "group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self.migrate_to_chat_id},
            )


@dataclass(slots=True)
class Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    allowed_updates: list[str]
    generation: int
    delivered: int = 0
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(slots=True)
class CallbackRecord:
    query: dict[str, Any]
    answer: dict[str, Any] | None = None


class CallLog:
    """The most recent Bot API calls, and counters over all of them. EmulatorState locks around it."""

    def __init__(self, max_calls: int) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=max_calls)
        self.total = 0
        self.per_method: dict[str, int] = {}
        self.errors_per_status: dict[int, int] = {}

    def record(self, method: str, params: dict[str, Any], status: int, description: str | None) -> None:
        self.total += 1
        self.per_method[method] = self.per_method.get(method, 0) + 1
        if status != 200:
            self.errors_per_status[status] = self.errors_per_status.get(status, 0) + 1
        self.entries.append(
            {
                "seq": self.total,
                "time": time.time(),
                "method": method,
                "params": params,
                "ok": status == 200,
                "status": status,
                "description": description,
            }
        )

    def select(self, method: str | None, since: int) -> list[dict[str, Any]]:
        return [c for c in self.entries if c["seq"] > since and (method is None or c["method"] == method)]

    def stats(self) -> dict[str, Any]:
        return {
            "calls_total": self.total,
            "calls_per_method": dict(self.per_method),
            "errors_per_status": {str(k): v for k, v in self.errors_per_status.items()},
        }
