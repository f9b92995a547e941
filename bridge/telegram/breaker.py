"""A circuit breaker around the Bot API: stop sending while Telegram is failing, probe, then resume.

States: *closed* (calls flow; failures are counted over a sliding window), *open* (no calls until the open
period ends), *half_open* (one trial call at a time; enough successes close the breaker, one failure opens it
again for twice as long, up to `max_open_seconds`). The doubling resets once the breaker fully closes.

What counts: the caller records a failure for what says the API is unwell (`TransportError.api_unavailable`:
timeouts, network errors, 5xx) and a success for any answer, including permanent errors such as "chat not
found" and 429s (the API worked; that message did not, or must wait: the rate limiter handles 429s). A call
let through as the half-open trial must report one or the other, or the next trial waits `open_seconds`.

Everything runs on one event loop without awaiting, so no lock is needed. `clock` is injectable so tests can
drive time.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpen(Exception):
    """Raised by `CircuitBreaker.before_call` when no call may go out; `retry_in` seconds until one may."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"circuit breaker open, retry in {retry_in:.1f} s")
        self.retry_in = retry_in


StateListener = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    """Counts failures, opens after `failure_threshold` of them within `window_seconds`.

    `max_open_seconds` defaults to ten times `open_seconds` (the BridgeSettings help text promises that).
    A half-open trial that never reports back (its task was cancelled) stops blocking further trials after
    `open_seconds`, so a lost trial cannot wedge the breaker.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        window_seconds: float = 60.0,
        open_seconds: float = 30.0,
        half_open_successes: int = 2,
        max_open_seconds: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        self._clock = clock
        self._listeners: list[StateListener] = [on_state_change] if on_state_change else []
        self._state = BreakerState.CLOSED
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._open_for = 0.0
        self._reopens = 0  # consecutive opens without a full close; each doubles the open period
        self._trial_started: float | None = None
        self._successes = 0
        self.opens = 0  # times opened since built, for metrics
        self._max_open_explicit = False
        self.update(
            failure_threshold=failure_threshold,
            window_seconds=window_seconds,
            open_seconds=open_seconds,
            half_open_successes=half_open_successes,
            max_open_seconds=max_open_seconds,
        )

    def update(
        self,
        *,
        failure_threshold: int | None = None,
        window_seconds: float | None = None,
        open_seconds: float | None = None,
        half_open_successes: int | None = None,
        max_open_seconds: float | None = None,
    ) -> None:
        """Change the knobs given (live tuning); the others stay. An open period already running keeps its end.

        Raises ValueError for a threshold or success count below 1, or a non-positive duration.
        """
        if failure_threshold is not None:
            if failure_threshold < 1:
                raise ValueError("failure_threshold must be at least 1")
            self.failure_threshold = failure_threshold
        if half_open_successes is not None:
            if half_open_successes < 1:
                raise ValueError("half_open_successes must be at least 1")
            self.half_open_successes = half_open_successes
        for name, value in (("window_seconds", window_seconds), ("open_seconds", open_seconds)):
            if value is not None:
                if value <= 0:
                    raise ValueError(f"{name} must be positive")
                setattr(self, name, float(value))
        if max_open_seconds is not None:
            if max_open_seconds < self.open_seconds:
                raise ValueError("max_open_seconds must be at least open_seconds")
            self.max_open_seconds = float(max_open_seconds)
            self._max_open_explicit = True
        elif not self._max_open_explicit:
            self.max_open_seconds = self.open_seconds * 10

    def add_listener(self, listener: StateListener) -> None:
        """Call `listener(old, new)` on every state change. It must be quick; its exceptions are logged and dropped."""
        self._listeners.append(listener)

    @property
    def state(self) -> BreakerState:
        """The current state; an open period that has ended reads as half_open."""
        if self._state is BreakerState.OPEN and self._clock() >= self._opened_at + self._open_for:
            self._set_state(BreakerState.HALF_OPEN)
        return self._state

    def retry_in(self) -> float:
        """Seconds until a call may go out: 0 when one may now."""
        state = self.state
        if state is BreakerState.OPEN:
            return self._opened_at + self._open_for - self._clock()
        if state is BreakerState.HALF_OPEN and self._trial_blocks():
            return self._trial_started + self.open_seconds - self._clock()  # type: ignore[operator]
        return 0.0

    def allow(self) -> bool:
        """Whether a call may go out now. In half_open a True reserves the single trial: report its outcome."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._trial_blocks():
            return False
        self._trial_started = self._clock()
        return True

    def before_call(self) -> None:
        """`allow()` for callers that prefer an exception: raises BreakerOpen(retry_in) when no call may go out."""
        if not self.allow():
            raise BreakerOpen(max(0.0, self.retry_in()))

    def record_success(self) -> None:
        """A call got an answer from the API. In half_open, enough of them close the breaker."""
        if self.state is not BreakerState.HALF_OPEN:
            return
        self._trial_started = None
        self._successes += 1
        if self._successes >= self.half_open_successes:
            self._reopens = 0
            self._failures.clear()
            self._set_state(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """A call failed in a way that says the API is unwell. May open (or reopen) the breaker."""
        state = self.state
        now = self._clock()
        if state is BreakerState.HALF_OPEN:
            self._open(now)
        elif state is BreakerState.CLOSED:
            self._failures.append(now)
            self._forget_old_failures(now)
            if len(self._failures) >= self.failure_threshold:
                self._open(now)
        # In open: a call that went out before the breaker opened; it says nothing new.

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready picture for the dashboard and metrics."""
        state = self.state
        self._forget_old_failures(self._clock())
        return {
            "state": state.value,
            "failures_in_window": len(self._failures),
            "retry_in": round(max(0.0, self.retry_in()), 3),
            "open_seconds": self._open_for if state is not BreakerState.CLOSED else self._next_open_for(),
            "half_open_successes": self._successes,
            "opens": self.opens,
            "failure_threshold": self.failure_threshold,
            "window_seconds": self.window_seconds,
            "max_open_seconds": self.max_open_seconds,
        }

    def _trial_blocks(self) -> bool:
        return self._trial_started is not None and self._clock() < self._trial_started + self.open_seconds

    def _next_open_for(self) -> float:
        return min(self.max_open_seconds, self.open_seconds * 2**self._reopens)

    def _open(self, now: float) -> None:
        self._open_for = self._next_open_for()
        self._reopens += 1
        self._opened_at = now
        self._failures.clear()
        self.opens += 1
        self._set_state(BreakerState.OPEN)

    def _forget_old_failures(self, now: float) -> None:
        while self._failures and self._failures[0] <= now - self.window_seconds:
            self._failures.popleft()

    def _set_state(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if new is BreakerState.HALF_OPEN:
            self._successes = 0
            self._trial_started = None
        for listener in self._listeners:
            try:
                listener(old, new)
            except Exception:
                # A dashboard or metrics hook must never stop sends.
                logger.exception("circuit breaker listener failed")
