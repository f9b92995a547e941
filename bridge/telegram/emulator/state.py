"""Everything the emulator knows, in one object that the server thread writes and a test thread may read.

The emulator models one bot: every accepted token addresses it (getMe answers with the token's numeric id).
Every public method takes ``lock``; readers get copies or immutable snapshots (message dicts are replaced, never
mutated, when a message is edited). Long-polling waiters are woken through ``updates_changed`` and
``messages_changed`` from whichever thread changes things.
"""

from __future__ import annotations

import re
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .errors import bad_request, not_found, unauthorized
from .faults import FaultPlan
from .limits import FloodControl, LimitConfig
from .notify import Notifier
from .objects import StoredFile, bot_user
from .records import CHAT_STATUSES, CallbackRecord, CallLog, ChatConfig, MessageRecord, Webhook

TOKEN_FORMAT = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
TEST_TOKEN = "123456789:TEST-emulator-token_abcdefghijkl"
"""A token of Telegram's format, accepted by an emulator built without an explicit token set."""
DEFAULT_UPDATE_TYPES = frozenset({"message", "edited_message", "callback_query"})


class EmulatorState:
    """The emulated Bot API's world.

    ``tokens``: the accepted tokens; None accepts any token of Telegram's format. ``strict_html``: reject a bare
    ``&`` in HTML (Telegram keeps it). ``max_calls``: how many recent calls the call log keeps.
    """

    def __init__(
        self,
        *,
        tokens: Iterable[str] | None = None,
        strict_html: bool = True,
        bot_username: str = "cctelegram_emulator_bot",
        max_calls: int = 10_000,
        seed: int | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.tokens = frozenset(tokens) if tokens is not None else None
        self.bot_username = bot_username
        self.default_strict_html = strict_html
        self.max_calls = max_calls
        self.seed = seed
        self.updates_changed = Notifier()
        self.messages_changed = Notifier()
        self.closing = False
        self.poll_generation = 0
        self._bots: dict[str, dict[str, Any]] = {}
        self.faults = FaultPlan(seed)
        self.flood = FloodControl()
        self.reset()

    def reset(self) -> None:
        """Forget everything except the construction settings; wakes and releases every waiting request."""
        with self.lock:
            self.strict_html = self.default_strict_html
            self.messages: dict[tuple[int, int], MessageRecord] = {}
            self.message_log: list[MessageRecord] = []
            self._next_message_id: dict[int, int] = {}
            self._seq = 0
            self.chats: dict[int, ChatConfig] = {}
            self.users: dict[int, dict[str, Any]] = {}
            self.updates: deque[dict[str, Any]] = deque()
            self._next_update_id = 1
            self.allowed_updates: frozenset[str] = DEFAULT_UPDATE_TYPES
            self.webhook: Webhook | None = None
            self._webhook_generation = getattr(self, "_webhook_generation", 0) + 1
            self.callbacks: dict[str, CallbackRecord] = {}
            self.answered: list[dict[str, Any]] = []
            self.files: dict[str, StoredFile] = {}
            self.reactions: list[dict[str, Any]] = []
            self.commands: list[dict[str, Any]] = []
            self.calls = CallLog(self.max_calls)
            self.sent_per_chat: dict[int, int] = {}
            self.faults.reset(self.seed)
            self.flood.config = LimitConfig()
            self.flood.reset()
        self.updates_changed.notify()
        self.messages_changed.notify()

    # Bot side -----------------------------------------------------------------------------------------------

    def authorize(self, token: str) -> dict[str, Any]:
        """The bot user for ``token``; raises 404 for a malformed token and 401 for an unknown one, like Telegram."""
        bot = self._bots.get(token)
        if bot is not None:
            return bot
        if not TOKEN_FORMAT.match(token):
            raise not_found()
        if self.tokens is not None and token not in self.tokens:
            raise unauthorized()
        bot = bot_user(int(token.split(":", 1)[0]), self.bot_username)
        with self.lock:
            self._bots[token] = bot
        return bot

    def check_chat(self, chat_id: int) -> None:
        """Raise the configured error for a blocked, unknown or migrated chat."""
        if self.chats:
            config = self.chats.get(chat_id)
            if config is not None:
                config.check()

    def configure_chat(self, chat_id: int, status: str, migrate_to_chat_id: int | None = None) -> None:
        if status not in CHAT_STATUSES:
            raise ValueError(f"status must be one of {CHAT_STATUSES}")
        if status == "migrated" and not migrate_to_chat_id:
            raise ValueError("a migrated chat needs migrate_to_chat_id")
        with self.lock:
            if status == "ok":
                self.chats.pop(chat_id, None)
            else:
                self.chats[chat_id] = ChatConfig(status, migrate_to_chat_id)

    def add_message(
        self, chat_id: int, build: Callable[[int], dict[str, Any]], *, outgoing: bool
    ) -> dict[str, Any]:
        """Store the message ``build(message_id)`` under the chat's next message id and return it."""
        with self.lock:
            message_id = self._next_message_id.get(chat_id, 0) + 1
            self._next_message_id[chat_id] = message_id
            message = build(message_id)
            self._seq += 1
            record = MessageRecord(self._seq, self._seq, chat_id, message, outgoing)
            self.messages[(chat_id, message_id)] = record
            self.message_log.append(record)
            if outgoing:
                self.sent_per_chat[chat_id] = self.sent_per_chat.get(chat_id, 0) + 1
        self.messages_changed.notify()
        return message

    def get_message(self, chat_id: int, message_id: int) -> MessageRecord | None:
        record = self.messages.get((chat_id, message_id))
        return None if record is None or record.deleted else record

    def replace_message(self, record: MessageRecord, message: dict[str, Any] | None) -> None:
        """Swap in the edited ``message``, or mark the record deleted when it is None."""
        with self.lock:
            self._seq += 1
            record.version = self._seq
            if message is None:
                record.deleted = True
            else:
                record.message = message
        self.messages_changed.notify()

    def store_file(self, data: bytes, file_name: str, mime_type: str, folder: str) -> StoredFile:
        stored = StoredFile.create(data, file_name, mime_type, folder)
        with self.lock:
            self.files[stored.file_id] = stored
        return stored

    def record_call(self, method: str, params: dict[str, Any], status: int, description: str | None) -> None:
        with self.lock:
            self.calls.record(method, params, status, description)

    # Updates ------------------------------------------------------------------------------------------------

    def enqueue_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Queue an update for getUpdates or the webhook; None when ``allowed_updates`` filters it out."""
        with self.lock:
            if kind not in self.allowed_updates:
                return None
            update = {"update_id": self._next_update_id, kind: payload}
            self._next_update_id += 1
            self.updates.append(update)
        self.updates_changed.notify()
        return update

    def confirm_updates(self, offset: int) -> None:
        """Forget updates below ``offset``; a negative offset keeps only the last ``-offset`` updates."""
        with self.lock:
            if offset < 0:
                while len(self.updates) > -offset:
                    self.updates.popleft()
            else:
                while self.updates and self.updates[0]["update_id"] < offset:
                    self.updates.popleft()

    def pending_updates(self, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            return [self.updates[i] for i in range(min(limit, len(self.updates)))]

    def set_allowed_updates(self, allowed: list[str] | None) -> None:
        """Telegram keeps the last non-empty list; an empty one restores the default set."""
        if allowed is None:
            return
        with self.lock:
            self.allowed_updates = frozenset(allowed) if allowed else DEFAULT_UPDATE_TYPES

    def begin_poll(self) -> int:
        """Register a new getUpdates request; an older one still waiting will answer 409 Conflict."""
        with self.lock:
            self.poll_generation += 1
            generation = self.poll_generation
        self.updates_changed.notify()
        return generation

    def set_webhook(
        self, url: str, secret_token: str | None, max_connections: int, allowed: list[str]
    ) -> Webhook:
        with self.lock:
            self._webhook_generation += 1
            self.webhook = Webhook(url, secret_token, max_connections, allowed, self._webhook_generation)
            webhook = self.webhook
        self.updates_changed.notify()
        return webhook

    def delete_webhook(self, drop_pending_updates: bool) -> None:
        with self.lock:
            self.webhook = None
            self._webhook_generation += 1
            if drop_pending_updates:
                self.updates.clear()
        self.updates_changed.notify()

    # Callback queries -----------------------------------------------------------------------------------------

    def register_callback(self, query: dict[str, Any]) -> None:
        with self.lock:
            self.callbacks[query["id"]] = CallbackRecord(query)

    def answer_callback(self, query_id: str, answer: dict[str, Any]) -> None:
        """Record the answer; raises Telegram's 400 for an unknown or already answered query."""
        with self.lock:
            record = self.callbacks.get(query_id)
            if record is None or record.answer is not None:
                raise bad_request("query is too old and response timeout expired or query ID is invalid")
            record.answer = {"callback_query_id": query_id, "time": time.time(), **answer}
            self.answered.append(record.answer)

    # Reading (safe from any thread) ---------------------------------------------------------------------------

    def sent_messages(
        self,
        chat_id: int | None = None,
        *,
        since: int = 0,
        changed_since: int | None = None,
        include_incoming: bool = False,
    ) -> list[dict[str, Any]]:
        """Message records (see MessageRecord.to_json) in creation order, filtered by chat and ``seq > since``;
        with ``changed_since`` the records created, edited or deleted after that version instead."""
        with self.lock:
            if changed_since is not None:
                records = sorted(
                    (r for r in self.message_log if r.version > changed_since), key=lambda r: r.version
                )
            else:
                records = self.message_log[bisect_right(self.message_log, since, key=lambda r: r.seq) :]
            return [
                record.to_json()
                for record in records
                if (include_incoming or record.outgoing) and (chat_id is None or record.chat_id == chat_id)
            ]

    def last_message(self, chat_id: int) -> dict[str, Any] | None:
        """The current form of the last message the bot sent to ``chat_id`` (None if none)."""
        with self.lock:
            for record in reversed(self.message_log):
                if record.chat_id == chat_id and record.outgoing and not record.deleted:
                    return record.message
        return None

    def call_log(self, method: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """Recorded Bot API calls (seq, time, method, params, ok, status, description), oldest first."""
        with self.lock:
            return self.calls.select(method, since)

    def answered_callbacks(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.answered)

    def stats(self) -> dict[str, Any]:
        """Counters for the control API's /stats: sends per chat, 429s (flood and injected), observed rates."""
        with self.lock:
            flood = self.flood.stats()
            return {
                "messages_total": sum(self.sent_per_chat.values()),
                "messages_per_chat": {str(k): v for k, v in self.sent_per_chat.items()},
                "too_many_requests": flood["flood_429"] + self.faults.fired_by_status.get(429, 0),
                "injected_faults": {str(k): v for k, v in self.faults.fired_by_status.items()},
                "pending_updates": len(self.updates),
                **self.calls.stats(),
                **flood,
            }

    def close(self) -> None:
        """Release every held request (server shutdown)."""
        self.closing = True
        self.updates_changed.notify()
        self.messages_changed.notify()
