"""The typed Event that travels inward from every origin (file, MCP, hook, shell).

`Event` is built by `bridge.events.parse` (which validates) or by `Event.from_json` (queue payloads the bridge
wrote itself, trusted). Its `data` fields are described in `bridge.events.data` (EventData, validate_data),
re-exported here. Nothing here imports Django or, until `typed_data` is used, pydantic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bridge.events import data as _data
from bridge.events.catalog import EventTypeInfo, emoji_for, lookup
from bridge.events.data import DATA_FIELDS, InvalidData, validate_data
from bridge.events.priority import Priority

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["DATA_FIELDS", "DEFAULT_SOURCE", "ORIGINS", "Event", "InvalidData", "validate_data"]

DEFAULT_SOURCE = "claude-code"
ORIGINS: tuple[str, ...] = ("file", "mcp", "hook", "shell")
OPTIONAL_FIELDS: tuple[str, ...] = (
    "correlation_id",
    "parent_event_id",
    "processing_status",
    "schema_version",
    "created_at",
    "processed_at",
)

_ALARM_TYPES = frozenset({"error_occurred", "security_alert"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One event as accepted. Contract: built by `bridge.events.parse`, which guarantees that `type` matches
    ^[a-z0-9_]{1,64}$, `timestamp` is timezone-aware UTC, and `data` is a JSON object whose known fields
    passed `validate_data`. Direct construction skips those checks."""

    event_id: str
    type: str
    title: str
    description: str = ""
    source: str = DEFAULT_SOURCE
    timestamp: datetime
    task_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    origin: str = "file"
    correlation_id: str | None = None
    parent_event_id: str | None = None
    retry_count: int = 0
    processing_status: str | None = None
    schema_version: str | None = None
    created_at: str | None = None
    processed_at: str | None = None

    @property
    def info(self) -> EventTypeInfo:
        return lookup(self.type)

    @property
    def category(self) -> str:
        return lookup(self.type).category

    @property
    def emoji(self) -> str:
        return emoji_for(self.type, self.data)

    @property
    def is_approval(self) -> bool:
        return self.type == "approval_request"

    @property
    def priority(self) -> Priority:
        """data.priority when given; else URGENT for approvals and critical severity, HIGH for high
        severity and failure/alarm types, NORMAL otherwise."""
        given = self.data.get("priority")
        if isinstance(given, str):
            try:
                return Priority.parse(given)
            except ValueError:
                pass
        severity = self.data.get("severity")
        if self.type == "approval_request" or severity == "critical":
            return Priority.URGENT
        if severity == "high" or self.type.endswith("_failed") or self.type in _ALARM_TYPES:
            return Priority.HIGH
        return Priority.NORMAL

    @property
    def typed_data(self) -> BaseModel:
        """`data` as an EventData (unknown keys kept as extras). Raises pydantic.ValidationError only for
        an Event that did not come through `bridge.events.parse`."""
        return _data.EventData.model_validate(self.data)

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON for the queue; `Event.from_json(e.to_json()) == e`."""
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "source": self.source,
            "timestamp": self.timestamp.isoformat(),
            "task_id": self.task_id,
            "data": self.data,
            "origin": self.origin,
        }
        if self.retry_count:
            out["retry_count"] = self.retry_count
        for name in OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return _ENCODER.encode(out).encode()

    @classmethod
    def from_json(cls, payload: bytes | str) -> Event:
        """The Event that `to_json` wrote. Raises ValueError when `payload` is not such a document."""
        try:
            obj = json.loads(payload)
            return cls(
                event_id=obj["event_id"],
                type=obj["type"],
                title=obj["title"],
                description=obj["description"],
                source=obj["source"],
                timestamp=datetime.fromisoformat(obj["timestamp"]),
                task_id=obj["task_id"],
                data=obj["data"],
                origin=obj["origin"],
                retry_count=obj.get("retry_count", 0),
                **{name: obj.get(name) for name in OPTIONAL_FIELDS},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an Event payload: {exc!r}") from None


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def __getattr__(name: str) -> Any:
    if name in ("Action", "EventData"):  # built lazily in bridge.events.data
        return getattr(_data, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
