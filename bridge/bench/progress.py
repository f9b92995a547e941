"""Progress on stderr while the bench runs: one line per step, percentages on long waits.

On a terminal a percentage rewrites its own line; in a log (CI, a pipe) it prints at most every 25 %, so the log
stays short and still shows that something moves.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.scenario = ""
        self._last_percent = -1
        self._last_shown = 0.0
        self._open_line = False

    def _elapsed(self) -> str:
        return f"[{time.monotonic() - self.started:6.1f}s]"

    def _write(self, text: str) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
        self.stream.write(f"{self._elapsed()} {text}\n")
        self.stream.flush()

    def begin(self, scenario: str, title: str) -> None:
        self.scenario = scenario
        self._write(f"== {scenario}: {title}")

    def step(self, text: str) -> None:
        """A step of the current scenario starts."""
        self._last_percent = -1
        self._write(f"   {self.scenario} · {text}")

    def note(self, text: str) -> None:
        self._write(f"   {self.scenario} · {text}")

    def percent(self, done: float, total: float, what: str = "") -> None:
        """How far a long step is; cheap to call often."""
        value = int(100 * done / total) if total else 100
        value = max(0, min(100, value))
        now = time.monotonic()
        if self.tty:
            if value == self._last_percent and now - self._last_shown < 0.5:
                return
            self.stream.write(f"\r{self._elapsed()}    {value:3d}% {what}".ljust(60))
            self.stream.flush()
            self._open_line = value < 100
            if value == 100:
                self.stream.write("\n")
        elif value // 25 > self._last_percent // 25 or (value == 100 and self._last_percent < 100):
            self.stream.write(f"{self._elapsed()}    {value:3d}% {what}\n")
            self.stream.flush()
        else:
            return
        self._last_percent, self._last_shown = value, now
