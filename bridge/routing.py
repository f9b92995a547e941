"""Routing: which recipients an event goes to, and which of those deliveries the mode suppresses."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.events.priority import Priority
from bridge.events.schema import Event


@dataclass(frozen=True, slots=True)
class Target:
    """A recipient as routing sees it: a snapshot, cheap to cache and safe to share between tasks."""

    pk: int
    chat_id: int
    role: str
    sources: tuple[str, ...]
    categories: tuple[str, ...]
    min_priority: int

    def wants(self, event: Event) -> bool:
        if self.sources and event.source not in self.sources:
            return False
        if self.categories and event.category not in self.categories:
            return False
        # Approvals reach every matching approver whatever their threshold: an agent is waiting on them.
        return event.is_approval or int(event.priority) >= self.min_priority


def passes_mode(event: Event, mode: str) -> bool:
    """muted lets through only approvals and critical alerts (the original leaked completions and progress)."""
    if mode != "muted":
        return True
    return event.is_approval or event.data.get("severity") == "critical" or event.priority == Priority.URGENT


def route(event: Event, targets: list[Target], mode: str) -> list[tuple[Target, bool]]:
    """Every active target whose filters match, with whether its delivery is suppressed by the mode."""
    suppressed = not passes_mode(event, mode)
    return [(target, suppressed) for target in targets if target.wants(event)]
