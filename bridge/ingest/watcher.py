"""The watcher: event files in the events folder become paths on a bounded queue, oldest first.

Two modes, so memory stays bounded however many files arrive:
- sweep: read the folder in slices of at most ``slice_size`` entries, oldest first within a slice, and put them on
  the queue; used at start (files already waiting), after a flood, and periodically as a safety net for file-system
  notifications the kernel dropped;
- watch: watchfiles notifications with a debounce of a few milliseconds, so a file is seen as soon as it is renamed
  into the folder. When the queue passes the backpressure threshold the watcher stops watching (the notifier
  would otherwise buffer every new name) and goes back to sweeping, which waits for room before reading more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, awatch

logger = logging.getLogger(__name__)

# Names editors and careful writers use for work in progress: never events.
_TEMP_PREFIXES = (".", "#", "~")
_TEMP_SUFFIXES = ("~", ".tmp", ".swp", ".part")
# After an unexpected failure (the folder deleted, the notifier's thread dying) the watcher starts over after this
# pause, rather than dying and leaving the bridge deaf, or spinning on a failure that persists.
_RESTART_DELAY = 1.0


def is_event_file(name: str) -> bool:
    return (
        name.endswith(".json") and not name.startswith(_TEMP_PREFIXES) and not name.endswith(_TEMP_SUFFIXES)
    )


class FileSource:
    """Feeds event-file paths to ``out``; each path is handed out once until ``done(path)`` is called."""

    def __init__(
        self,
        events_dir: Path,
        out: asyncio.Queue[Path],
        *,
        debounce_ms: int = 2,
        step_ms: int = 1,
        backpressure_percent: int = 80,
        slice_size: int = 500,
        resweep_seconds: float = 30.0,
    ) -> None:
        self.events_dir = events_dir
        self.out = out
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.backpressure_percent = backpressure_percent
        self.slice_size = slice_size
        self.resweep_seconds = resweep_seconds
        self.in_flight: set[Path] = set()
        self._interrupt = asyncio.Event()
        self._stopping = False
        self._sweep_requested = False
        self.on_mode: Callable[[str], None] | None = None

    # --- control -----------------------------------------------------------------------------------------------
    def retune(self, *, debounce_ms: int, step_ms: int, backpressure_percent: int) -> None:
        """Apply new watcher settings; the notifier restarts with them within one step."""
        changed = (debounce_ms, step_ms) != (self.debounce_ms, self.step_ms)
        self.debounce_ms, self.step_ms = debounce_ms, step_ms
        self.backpressure_percent = backpressure_percent
        if changed:
            self._interrupt.set()

    def stop(self) -> None:
        self._stopping = True
        self._interrupt.set()

    def request_sweep(self) -> None:
        """Leave watch mode and sweep the folder soon: files given back with ``done`` without being removed
        (their store failed) produce no new notification, so only a sweep finds them again."""
        self._sweep_requested = True
        self._interrupt.set()

    def done(self, path: Path) -> None:
        self.in_flight.discard(path)

    @property
    def threshold(self) -> int:
        return max(1, self.out.maxsize * self.backpressure_percent // 100) if self.out.maxsize else 1 << 30

    # --- the loop ----------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Sweep, then watch, until ``stop``; back to sweeping after a flood, a retune or a sweep request."""
        while not self._stopping:
            try:
                self.events_dir.mkdir(parents=True, exist_ok=True)
                await self.sweep()
                if self._stopping:
                    break
                await self._watch()
            except Exception:
                logger.exception("the watcher failed; it starts over in %.0f s", _RESTART_DELAY)
                await asyncio.sleep(_RESTART_DELAY)

    async def sweep(self) -> int:
        """Hand out every waiting file, oldest first slice by slice; returns how many were handed out."""
        self._mode("sweep")
        self._sweep_requested = False
        total = 0
        while not self._stopping:
            batch = await asyncio.to_thread(self.scan, self.slice_size)
            if not batch:
                return total
            for path in batch:
                if self._stopping:
                    return total
                self.in_flight.add(path)
                await self.out.put(path)  # blocks while the pipeline is full: backpressure
                total += 1
        return total

    def scan(self, limit: int) -> list[Path]:
        """Up to ``limit`` event files not already handed out, oldest first.

        The first ``limit`` found in directory order are sorted, not the ``limit`` oldest of the whole folder:
        finding those would stat every file once per slice, quadratic in a flood of 100,000. With fewer than
        ``limit`` files waiting (every case but a flood) the order is exact.
        """
        found: list[tuple[float, str]] = []
        try:
            with os.scandir(self.events_dir) as entries:
                for entry in entries:
                    if not is_event_file(entry.name):
                        continue
                    path = self.events_dir / entry.name
                    if path in self.in_flight:
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            continue
                        mtime = entry.stat(follow_symlinks=False).st_mtime
                    except FileNotFoundError:
                        continue
                    found.append((mtime, entry.name))
                    if len(found) >= limit:
                        break
        except FileNotFoundError:
            self.events_dir.mkdir(parents=True, exist_ok=True)
        found.sort()
        return [self.events_dir / name for _, name in found]

    async def _watch(self) -> None:
        if self._sweep_requested or self._stopping:
            return
        self._mode("watch")
        self._interrupt.clear()
        started = time.monotonic()
        first = True
        changes_seen = awatch(
            self.events_dir,
            debounce=self.debounce_ms,
            step=self.step_ms,
            stop_event=self._interrupt,
            recursive=False,
            watch_filter=_event_filter,
            rust_timeout=250,
            yield_on_timeout=True,
        )
        # aclosing: leaving watch mode must stop the notifier's thread now, not when the generator is collected.
        async with contextlib.aclosing(changes_seen):
            async for changes in changes_seen:
                if first:
                    # The notifier runs by its first yield: a sweep now catches files that arrived between the
                    # last sweep and its start. A full slice means a flood: go back to sweeping.
                    first = False
                    waiting = await asyncio.to_thread(self.scan, self.slice_size)
                    if len(waiting) >= self.slice_size or not all(map(self._offer, waiting)):
                        return
                paths = sorted(
                    {Path(p) for change, p in changes if change != Change.deleted},
                    key=_mtime,
                )
                for path in paths:
                    if not self._offer(path):
                        return  # over the threshold: back to sweeping
                if self._sweep_requested or time.monotonic() - started > self.resweep_seconds:
                    return

    def _offer(self, path: Path) -> bool:
        """Queue ``path`` unless it is already handed out; False when the queue is past the threshold."""
        if path in self.in_flight:
            return True
        if self.out.qsize() >= self.threshold:
            return False
        self.in_flight.add(path)
        self.out.put_nowait(path)
        return True

    def _mode(self, mode: str) -> None:
        if self.on_mode is not None:
            self.on_mode(mode)


def _event_filter(change: Change, path: str) -> bool:
    return is_event_file(os.path.basename(path))


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0
