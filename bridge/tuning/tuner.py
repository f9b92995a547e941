"""The auto-tuner's decisions: telemetry in, bounded knob changes out. Pure: no clock, database or network.

Three knobs move, each only downward from the operator's value (its ceiling) and back up to it:

- ``compression_level`` is lowered when the p99 end-to-end latency stays over its target;
- ``cache_max_entries`` is shrunk when memory stays over its budget;
- ``rate_global_per_second`` is lowered when Telegram answers 429, or CPU or memory stay high (memory only once
  the cache is at its floor).

It never oscillates, by construction:

- *hysteresis*: pressure starts above 110 % of the latency target (100 % of the memory budget, 85 % CPU) and calm
  only under 50 % (80 %, 60 %); in between nothing moves;
- *confirmation*: pressure must show in every one of the last ``confirm_samples`` samples (a minute), calm in every
  one of the last ``calm_samples`` (two minutes), and only samples taken after the knob's last change count, so a
  change is judged by its effect;
- *dwell and cooldown*: a knob moves down at most once a minute and up only after ``restore_dwell_seconds`` of
  rest; after any change every knob waits ``cooldown_seconds``, one change at a time, so each effect is
  attributable;
- *damping*: each time a raised knob had to be lowered again (a reversal, remembered a day), its next raise waits
  twice as long (up to six hours), so a knob that sits on the edge settles instead of cycling;
- *bounded steps*: down by about a third, up by one level or a tenth, never past a floor or the ceiling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

KNOBS = ("compression_level", "cache_max_entries", "rate_global_per_second")


@dataclass(frozen=True, slots=True)
class Sample:
    """What the workers measured over the ``Policy.sample_seconds`` before ``at`` (epoch seconds)."""

    at: float
    p99_latency_ms: float | None  # None: nothing was delivered
    rss_mb: float
    cpu_percent: float  # 100 = one core
    throttled: int = 0  # 429 answers in the sample's span
    workers: int = 1


@dataclass(frozen=True, slots=True)
class Knobs:
    compression_level: int
    cache_max_entries: int
    rate_global_per_second: float


@dataclass(frozen=True, slots=True)
class Change:
    knob: str
    old: float
    new: float
    reason: str
    at: float = 0.0

    @property
    def direction(self) -> str:
        return "down" if self.new < self.old else "up"


@dataclass(frozen=True, slots=True)
class Window:
    """Everything one decision looks at: the latest samples (oldest first), the knobs in force, the operator's
    values (ceilings), the targets, and the tuner's own recent changes (oldest first)."""

    samples: Sequence[Sample]
    knobs: Knobs
    ceilings: Knobs
    latency_target_ms: float
    memory_budget_mb: float
    history: Sequence[Change] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Policy:
    sample_seconds: float = 10.0
    confirm_samples: int = 6
    calm_samples: int = 12
    latency_enter: float = 1.10
    latency_exit: float = 0.50
    memory_enter: float = 1.00
    memory_exit: float = 0.80
    cpu_enter: float = 85.0
    cpu_exit: float = 60.0
    dwell_seconds: float = 60.0
    restore_dwell_seconds: float = 180.0
    max_restore_dwell_seconds: float = 6 * 3600.0
    cooldown_seconds: float = 30.0
    reversal_memory_seconds: float = 24 * 3600.0
    compression_floor: int = 1
    cache_floor: int = 10  # BridgeSettings' own minimum
    cache_floor_fraction: float = 0.1
    rate_floor: float = 0.1  # BridgeSettings' own minimum
    rate_floor_fraction: float = 0.1
    rate_down: float = 0.7
    rate_up: float = 1.1
    cache_down: float = 0.5
    cache_up: float = 1.25


class Tuner:
    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()

    def decide(self, window: Window) -> list[Change]:
        """At most one change: the most pressing one, else one step of restoring, else none."""
        if not window.samples:
            return []
        now = window.samples[-1].at
        if any(now - c.at < self.policy.cooldown_seconds for c in window.history):
            return []
        signals = _Signals(window, self.policy)
        for step in (self._throttle, self._memory, self._cpu, self._latency):
            change = step(window, signals, now)
            if change is not None:
                return [change]
        if signals.any_pressure():
            return []
        for step in (self._restore_rate, self._restore_cache, self._restore_compression):
            change = step(window, signals, now)
            if change is not None:
                return [change]
        return []

    # --- pressure ----------------------------------------------------------------------------------------------
    def _throttle(self, w: Window, s: _Signals, now: float) -> Change | None:
        if s.throttled("rate_global_per_second"):
            return self._lower_rate(w, now, "Telegram answered 429 Too Many Requests")
        return None

    def _memory(self, w: Window, s: _Signals, now: float) -> Change | None:
        if s.memory_high("cache_max_entries") and w.knobs.cache_max_entries > self._cache_floor(w):
            if self._may_lower(w, "cache_max_entries", now):
                new = max(self._cache_floor(w), int(w.knobs.cache_max_entries * self.policy.cache_down))
                return Change("cache_max_entries", w.knobs.cache_max_entries, new, s.memory_reason(), now)
            return None
        if s.memory_high("rate_global_per_second"):
            return self._lower_rate(w, now, s.memory_reason() + "; the cache is at its floor")
        return None

    def _cpu(self, w: Window, s: _Signals, now: float) -> Change | None:
        if s.cpu_high("rate_global_per_second"):
            return self._lower_rate(w, now, s.cpu_reason())
        return None

    def _latency(self, w: Window, s: _Signals, now: float) -> Change | None:
        level = w.knobs.compression_level
        if not s.latency_high("compression_level") or level <= self.policy.compression_floor:
            return None
        if not self._may_lower(w, "compression_level", now):
            return None
        new = max(self.policy.compression_floor, level - max(1, level // 3))
        return Change("compression_level", level, new, s.latency_reason(), now)

    def _lower_rate(self, w: Window, now: float, reason: str) -> Change | None:
        rate, floor = w.knobs.rate_global_per_second, self._rate_floor(w)
        if rate <= floor or not self._may_lower(w, "rate_global_per_second", now):
            return None
        return Change(
            "rate_global_per_second", rate, max(floor, round(rate * self.policy.rate_down, 2)), reason, now
        )

    # --- restoring ---------------------------------------------------------------------------------------------
    def _restore_rate(self, w: Window, s: _Signals, now: float) -> Change | None:
        rate, ceiling = w.knobs.rate_global_per_second, w.ceilings.rate_global_per_second
        knob = "rate_global_per_second"
        if rate >= ceiling or not (s.no_429s(knob) and s.cpu_calm(knob) and s.memory_calm(knob)):
            return None
        if not self._may_raise(w, knob, now):
            return None
        new = round(rate * self.policy.rate_up, 2)
        new = ceiling if new >= ceiling * 0.95 else new
        return Change(knob, rate, new, "no 429s, CPU and memory calm", now)

    def _restore_cache(self, w: Window, s: _Signals, now: float) -> Change | None:
        entries, ceiling = w.knobs.cache_max_entries, w.ceilings.cache_max_entries
        knob = "cache_max_entries"
        if entries >= ceiling or not s.memory_calm(knob) or not self._may_raise(w, knob, now):
            return None
        new = min(ceiling, int(entries * self.policy.cache_up) + 1)
        return Change(knob, entries, new, "memory well under budget", now)

    def _restore_compression(self, w: Window, s: _Signals, now: float) -> Change | None:
        level, ceiling = w.knobs.compression_level, w.ceilings.compression_level
        knob = "compression_level"
        if level >= ceiling or not s.latency_calm(knob) or not self._may_raise(w, knob, now):
            return None
        return Change(knob, level, level + 1, "p99 latency well under target", now)

    # --- dwell, damping, floors --------------------------------------------------------------------------------
    def _may_lower(self, w: Window, knob: str, now: float) -> bool:
        last = _last(w.history, knob)
        return last is None or now - last.at >= self.policy.dwell_seconds

    def _may_raise(self, w: Window, knob: str, now: float) -> bool:
        last = _last(w.history, knob)
        if last is None:
            return True
        reversals = _reversals(w.history, knob, since=now - self.policy.reversal_memory_seconds)
        dwell = min(self.policy.restore_dwell_seconds * 2**reversals, self.policy.max_restore_dwell_seconds)
        return now - last.at >= dwell

    def _cache_floor(self, w: Window) -> int:
        return max(
            self.policy.cache_floor, int(w.ceilings.cache_max_entries * self.policy.cache_floor_fraction)
        )

    def _rate_floor(self, w: Window) -> float:
        ceiling = w.ceilings.rate_global_per_second
        return max(self.policy.rate_floor, round(ceiling * self.policy.rate_floor_fraction, 2))


class _Signals:
    """Pressure and calm, read from the samples taken since a knob last changed (a change is judged by its
    effect, not by what came before it)."""

    def __init__(self, window: Window, policy: Policy) -> None:
        self.w, self.p = window, policy
        self.latency_target = window.latency_target_ms
        self.budget = window.memory_budget_mb

    def _since_change(self, knob: str) -> list[Sample]:
        last = _last(self.w.history, knob)
        if last is None:
            return list(self.w.samples)
        # A sample covers the sample_seconds before its time: only those wholly after the change count.
        return [s for s in self.w.samples if s.at - self.p.sample_seconds >= last.at]

    def _all(self, knob: str, count: int, test) -> bool:
        samples = self._since_change(knob)[-count:]
        return len(samples) >= count and all(test(s) for s in samples)

    def latency_high(self, knob: str) -> bool:
        limit = self.latency_target * self.p.latency_enter
        return self._all(
            knob,
            self.p.confirm_samples,
            lambda s: s.p99_latency_ms is not None and s.p99_latency_ms > limit,
        )

    def latency_calm(self, knob: str) -> bool:
        limit = self.latency_target * self.p.latency_exit
        return self._all(
            knob, self.p.calm_samples, lambda s: s.p99_latency_ms is None or s.p99_latency_ms < limit
        )

    def memory_high(self, knob: str) -> bool:
        limit = self.budget * self.p.memory_enter
        return self._all(knob, self.p.confirm_samples, lambda s: s.rss_mb > limit)

    def memory_calm(self, knob: str) -> bool:
        limit = self.budget * self.p.memory_exit
        return self._all(knob, self.p.calm_samples, lambda s: s.rss_mb < limit)

    def cpu_high(self, knob: str) -> bool:
        return self._all(knob, self.p.confirm_samples, lambda s: s.cpu_percent > self.p.cpu_enter)

    def cpu_calm(self, knob: str) -> bool:
        return self._all(knob, self.p.calm_samples, lambda s: s.cpu_percent < self.p.cpu_exit)

    def throttled(self, knob: str) -> bool:
        """429s in the latest sample taken after the knob's last change: Telegram says so, no need to confirm."""
        samples = self._since_change(knob)
        return bool(samples) and samples[-1].throttled > 0

    def no_429s(self, knob: str) -> bool:
        return self._all(knob, self.p.calm_samples, lambda s: s.throttled == 0)

    def any_pressure(self) -> bool:
        """Pressure on any signal, judged over the latest samples whatever changed: no restoring meanwhile."""
        latest = self.w.samples[-self.p.confirm_samples :]
        return (
            latest[-1].throttled > 0
            or any(s.rss_mb > self.budget * self.p.memory_enter for s in latest)
            or any(s.cpu_percent > self.p.cpu_enter for s in latest)
            or any(
                s.p99_latency_ms is not None and s.p99_latency_ms > self.latency_target * self.p.latency_enter
                for s in latest
            )
        )

    def latency_reason(self) -> str:
        worst = min(s.p99_latency_ms or 0.0 for s in self.w.samples[-self.p.confirm_samples :])
        return f"p99 latency at least {worst:.0f} ms for a minute (target {self.latency_target:.0f} ms)"

    def memory_reason(self) -> str:
        low = min(s.rss_mb for s in self.w.samples[-self.p.confirm_samples :])
        return f"memory at least {low:.0f} MB for a minute (budget {self.budget:.0f} MB)"

    def cpu_reason(self) -> str:
        low = min(s.cpu_percent for s in self.w.samples[-self.p.confirm_samples :])
        return f"CPU at least {low:.0f}% for a minute"


def _last(history: Sequence[Change], knob: str) -> Change | None:
    for change in reversed(history):
        if change.knob == knob:
            return change
    return None


def _reversals(history: Sequence[Change], knob: str, *, since: float) -> int:
    """How often, since ``since``, the knob was lowered right after being raised."""
    count, previous = 0, None
    for change in history:
        if change.knob != knob or change.at < since:
            continue
        if previous == "up" and change.direction == "down":
            count += 1
        previous = change.direction
    return count
