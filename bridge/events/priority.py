"""Event priority: one ordering shared by parsing, routing, the queue lanes and the models."""

from __future__ import annotations

from enum import IntEnum


class Priority(IntEnum):
    LOW = 0
    NORMAL = 1
    HIGH = 2
    URGENT = 3

    @classmethod
    def parse(cls, value: str) -> Priority:
        """'low' / 'normal' / 'high' / 'urgent' (case-insensitive); raises ValueError otherwise."""
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ValueError(f"priority must be one of low, normal, high, urgent, not {value!r}") from None

    @property
    def label(self) -> str:
        return self.name.lower()
