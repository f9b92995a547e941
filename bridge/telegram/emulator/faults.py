"""Injected faults: make chosen Bot API calls fail, slow down or hang, deterministically or at random.

A rule matches a request by method (and optionally chat), fires with its ``probability``, and is used up after
``fail_next`` firings (None: never). When it fires, the request is delayed by ``delay_ms``, held until the
client gives up if ``timeout`` is set, and answered with ``status`` (429 carries ``retry_after`` like Telegram;
None answers normally after the delay). With ``apply`` the method takes effect *before* the fault, which models
"Telegram sent it but the answer was lost". Rules without a method never touch getUpdates, because a poller
running beside the code under test would otherwise eat them.

Not thread-safe by itself: EmulatorState calls it under its lock.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import ApiError, server_error, too_many_requests


@dataclass(slots=True)
class FaultRule:
    method: str | None = None
    chat_id: int | None = None
    fail_next: int | None = 1
    probability: float = 1.0
    status: int | None = None
    retry_after: int = 1
    description: str | None = None
    delay_ms: int = 0
    timeout: bool = False
    hold_ms: int = 60_000
    apply: bool = False
    fired: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        """Build a rule from the control API; raises ValueError on unknown keys or inconsistent values.

        Without ``fail_next`` a rule fires once, unless it has a ``probability`` (then it stays until cleared).
        """
        known = {f.name for f in fields(cls)} - {"fired"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        values = dict(data)
        if "fail_next" not in values and "probability" in values:
            values["fail_next"] = None
        rule = cls(**values)
        if rule.method:
            rule.method = rule.method.lower()
        if not 0.0 <= rule.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if rule.status is not None and not 400 <= rule.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if rule.status is None and not rule.delay_ms and not rule.timeout:
            raise ValueError("a fault needs a status, a delay_ms or timeout")
        return rule

    def matches(self, method: str, chat_id: int | None) -> bool:
        if self.fail_next is not None and self.fired >= self.fail_next:
            return False
        if self.method is None:
            if method == "getupdates":
                return False
        elif self.method != method:
            return False
        return self.chat_id is None or self.chat_id == chat_id

    def error(self) -> ApiError | None:
        """The error this rule answers with, or None for a pure delay."""
        if self.status is None:
            return None
        if self.status == 429:
            error = too_many_requests(self.retry_after)
            if self.description:
                error.description = self.description
            return error
        if self.status >= 500:
            return server_error(self.status, self.description)
        return ApiError(self.status, self.description or f"Error {self.status}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultPlan:
    """The active rules, first match wins; ``seed`` makes probabilistic faults reproducible."""

    def __init__(self, seed: int | None = None) -> None:
        self.rules: list[FaultRule] = []
        self.fired_by_status: dict[int, int] = {}
        self._random = random.Random(seed)

    def add(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def clear(self) -> None:
        self.rules.clear()

    def reset(self, seed: int | None = None) -> None:
        self.rules.clear()
        self.fired_by_status.clear()
        if seed is not None:
            self._random.seed(seed)

    def pick(self, method: str, chat_id: int | None) -> FaultRule | None:
        """The rule that fires for this request, if any (counting the firing)."""
        if not self.rules:
            return None
        for rule in self.rules:
            if not rule.matches(method, chat_id):
                continue
            if rule.probability < 1.0 and self._random.random() >= rule.probability:
                continue
            rule.fired += 1
            if rule.status is not None:
                self.fired_by_status[rule.status] = self.fired_by_status.get(rule.status, 0) + 1
            return rule
        return None

    def to_json(self) -> list[dict[str, Any]]:
        return [rule.to_json() for rule in self.rules]
