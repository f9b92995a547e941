"""Telegram's flood limits, enforced when enabled, and the send rates actually observed, always.

Telegram documents ~1 message per second per chat (short bursts tolerated), 20 messages per minute per group and
~30 messages per second per bot; beyond them it answers 429 "Too Many Requests: retry after N". The emulator
models the per-chat limit as a token bucket (rate ``per_chat_per_second``, capacity ``per_chat_burst``) and the
group and global limits as sliding windows. The observed maxima let a benchmark check that the bridge's own
limiter keeps under Telegram's limits without depending on them being enforced.

Not thread-safe by itself: EmulatorState calls it under its lock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SEND_METHODS = frozenset({"sendmessage", "sendphoto", "senddocument"})
"""Methods (lower case, as routed) that count as sending a message."""


@dataclass(slots=True)
class LimitConfig:
    enabled: bool = False
    per_chat_per_second: float = 1.0
    per_chat_burst: int = 3
    per_group_per_minute: int = 20
    global_per_second: int = 30
    methods: frozenset[str] = field(default=SEND_METHODS)

    def updated(self, changes: dict[str, Any]) -> LimitConfig:
        """A copy with ``changes`` applied; raises ValueError on unknown keys or bad values."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown limit settings: {sorted(unknown)}")
        values = asdict(self)
        values.update(changes)
        values["methods"] = frozenset(m.lower() for m in values["methods"])
        config = LimitConfig(**values)
        if config.per_chat_per_second <= 0 or config.per_chat_burst < 1:
            raise ValueError("per_chat_per_second must be > 0 and per_chat_burst >= 1")
        if config.per_group_per_minute < 1 or config.global_per_second < 1:
            raise ValueError("per_group_per_minute and global_per_second must be >= 1")
        return config

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["methods"] = sorted(self.methods)
        return values


def _trim(window: deque[float], now: float, span: float) -> None:
    while window and now - window[0] >= span:
        window.popleft()


class FloodControl:
    """Admits or refuses sends to chats; ``admit`` returns None or the seconds the client must wait."""

    def __init__(self, config: LimitConfig | None = None) -> None:
        self.config = config or LimitConfig()
        self.reset()

    def reset(self) -> None:
        self._buckets: dict[int, tuple[float, float]] = {}  # chat -> (tokens, time)
        self._group_windows: dict[int, deque[float]] = {}
        self._global_window: deque[float] = deque()
        self._seen_chat: dict[int, deque[float]] = {}
        self._seen_global: deque[float] = deque()
        self.refused = 0
        self.max_per_chat_per_second = 0
        self.max_per_chat_by_chat: dict[int, int] = {}
        self.max_global_per_second = 0
        self.max_group_per_minute = 0

    def admit(self, chat_id: int, now: float) -> float | None:
        """Count one send to ``chat_id`` at ``now`` (monotonic seconds); None if allowed, else seconds to wait."""
        if self.config.enabled:
            wait = self._wait(chat_id, now)
            if wait is not None:
                self.refused += 1
                return wait
            self._buckets[chat_id] = (self._tokens(chat_id, now) - 1.0, now)
            self._global_window.append(now)
        if chat_id < 0:  # group windows serve both the limit and the observed maximum
            window = self._group_windows.setdefault(chat_id, deque())
            _trim(window, now, 60.0)
            window.append(now)
            self.max_group_per_minute = max(self.max_group_per_minute, len(window))
        self._observe(chat_id, now)
        return None

    def _tokens(self, chat_id: int, now: float) -> float:
        burst = float(self.config.per_chat_burst)
        tokens, since = self._buckets.get(chat_id, (burst, now))
        return min(burst, tokens + (now - since) * self.config.per_chat_per_second)

    def _wait(self, chat_id: int, now: float) -> float | None:
        config = self.config
        waits = []
        _trim(self._global_window, now, 1.0)
        if len(self._global_window) >= config.global_per_second:
            waits.append(self._global_window[0] + 1.0 - now)
        if chat_id < 0:
            window = self._group_windows.get(chat_id)
            if window is not None:
                _trim(window, now, 60.0)
                if len(window) >= config.per_group_per_minute:
                    waits.append(window[0] + 60.0 - now)
        tokens = self._tokens(chat_id, now)
        if tokens < 1.0:
            waits.append((1.0 - tokens) / config.per_chat_per_second)
        return max(waits) if waits else None

    def _observe(self, chat_id: int, now: float) -> None:
        window = self._seen_chat.get(chat_id)
        if window is None:
            window = self._seen_chat[chat_id] = deque()
        _trim(window, now, 1.0)
        window.append(now)
        count = len(window)
        if count > self.max_per_chat_by_chat.get(chat_id, 0):
            self.max_per_chat_by_chat[chat_id] = count
            self.max_per_chat_per_second = max(self.max_per_chat_per_second, count)
        _trim(self._seen_global, now, 1.0)
        self._seen_global.append(now)
        self.max_global_per_second = max(self.max_global_per_second, len(self._seen_global))

    def stats(self) -> dict[str, Any]:
        return {
            "limits": self.config.to_json(),
            "flood_429": self.refused,
            "max_per_chat_per_second": self.max_per_chat_per_second,
            "max_per_chat_per_second_by_chat": {str(k): v for k, v in self.max_per_chat_by_chat.items()},
            "max_global_per_second": self.max_global_per_second,
            "max_group_per_minute": self.max_group_per_minute,
        }
