"""The ingest stage: paths from the watcher -> parsed events -> durable store; bad files to quarantine.

A file is deleted only after its event is durable (row + queue entry), so a crash at any point leaves it in the
folder to be taken again at the next start, where its content-derived event_id makes it a duplicate, not a resend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from asgiref.sync import sync_to_async

from bridge import metrics
from bridge.events.parse import Limits, RejectedEvent, parse_file
from bridge.events.schema import Event
from bridge.ingest.checkpoint import WalCheckpointer
from bridge.ingest.quarantine import quarantine, shown
from bridge.ingest.store import EventStore
from bridge.ingest.watcher import FileSource
from bridge.models import AuditEntry

logger = logging.getLogger(__name__)

# Parsing a file this large takes long enough to stall the event loop: it goes to a worker thread.
_THREAD_PARSE_BYTES = 256 * 1024
# A file rejected as empty or truncated JSON that was modified this recently may still be being written by an
# agent that does not write-then-rename: look again shortly instead of quarantining a half-written event.
# The settle window counts from when the file was first looked at, so a file with an mtime in the future cannot be
# retried for ever.
_SETTLE_SECONDS = 0.5
_SETTLE_RETRY_DELAY = 0.05
_UNSETTLED_CODES = frozenset({"empty", "invalid_json", "invalid_utf8"})
# A file that could not be read for want of resources (EMFILE, ENOMEM, EIO) is kept out of circulation this long, so
# that sweeps do not spin on it while the shortage lasts.
_UNREADABLE_HOLD_SECONDS = 1.0


@dataclass
class BatchResult:
    stored: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    vanished: int = 0


class Ingestor:
    def __init__(
        self, events_dir: Path, store: EventStore, source: FileSource, *, limits: Limits | None = None
    ):
        self.events_dir = events_dir
        self.store = store
        self.source = source
        self.limits = limits or Limits()
        self.batch_size = 100
        # Pause after a failed batch (the database or Redis is down) before its files are taken again.
        self.retry_delay = 1.0
        self.on_stored = None  # callable(list[str]) -> None, set by the pipeline to wake the sender
        self.busy = False  # a batch taken from the paths queue is being ingested (the pipeline drains on it)
        self._settling: dict[Path, float] = {}  # path -> when it was first found half-written (monotonic)
        self.checkpointer: WalCheckpointer | None = None  # while ``run`` runs on SQLite

    async def run(self, paths: asyncio.Queue[Path]) -> None:
        """Take whatever is waiting (up to a batch) each round, so latency stays low and floods batch up."""
        self.checkpointer = WalCheckpointer.for_database()
        if self.checkpointer is not None:
            self.checkpointer.start()
        try:
            while True:
                await self._round(paths)
        finally:
            if self.checkpointer is not None:
                await asyncio.to_thread(self.checkpointer.stop)
                self.checkpointer = None

    async def _round(self, paths: asyncio.Queue[Path]) -> None:
        batch = [await paths.get()]
        self.busy = True
        try:
            while len(batch) < self.batch_size and not paths.empty():
                batch.append(paths.get_nowait())
            await self.ingest(batch)
        except Exception:
            # Nothing of the batch left the folder (files go only once stored); after a pause a sweep takes
            # them again. Their content-derived event_ids make whatever was stored a duplicate, not a resend.
            logger.exception("ingest of %d files failed; they stay in the folder", len(batch))
            await asyncio.sleep(self.retry_delay)
            for path in batch:
                self.source.done(path)
            self.source.request_sweep()
        finally:
            self.busy = False

    async def ingest(self, batch: list[Path]) -> BatchResult:
        result = BatchResult()
        events: list[tuple[Path, Event]] = []
        for path in batch:
            event = await self._parse(path, result)
            if event is not None:
                events.append((path, event))
        if events:
            stored = await self.store.store([event for _, event in events])
            if self.checkpointer is not None:
                self.checkpointer.wrote()
            for (path, event), outcome in zip(events, stored, strict=True):
                if outcome.duplicate:
                    result.duplicates.append(event.event_id)
                    metrics.EVENTS_DUPLICATE.inc()
                else:
                    result.stored.append(event.event_id)
                    metrics.RECEIVED[event.type].inc()
                _unlink(path)
                self.source.done(path)
            if self.on_stored is not None and result.stored:
                self.on_stored(result.stored)
        return result

    async def _parse(self, path: Path, result: BatchResult) -> Event | None:
        started = time.perf_counter()
        try:
            try:
                size = path.lstat().st_size
            except FileNotFoundError:
                size = 0
            if size > _THREAD_PARSE_BYTES:
                event = await asyncio.to_thread(parse_file, path, root=self.events_dir, limits=self.limits)
            else:
                event = parse_file(path, root=self.events_dir, limits=self.limits)
        except RejectedEvent as rejected:
            if rejected.code == "vanished" and (points_to := _link_target(path)) is not None:
                # The link is still there, only what it points to is not: it will never be an event. Left in the
                # folder it would be looked at again at every sweep.
                rejected = RejectedEvent(
                    "unreadable", f"{path.name} is a symlink to {points_to}, which does not exist"
                )
            if rejected.code == "not_a_file" and _is_folder(path):
                # A folder that merely has a .json name is nobody's event and may be someone's data: left where it
                # is, unread, as the sweep leaves it (only the watcher's notices bring one here).
                self._settling.pop(path, None)
                self.source.done(path)
                return None
            if rejected.code == "vanished":
                self._settling.pop(path, None)
                result.vanished += 1
                self.source.done(path)
                return None
            if rejected.code in _UNSETTLED_CODES and self._may_be_unfinished(path):
                asyncio.get_running_loop().call_later(_SETTLE_RETRY_DELAY, self._look_again, path)
                return None
            self._settling.pop(path, None)
            if await self._quarantine(path, rejected):
                result.quarantined.append(path.name)
            else:
                result.vanished += 1
            return None
        except OSError as exc:
            # Out of file descriptors or memory, an I/O error: not the file's fault, so no quarantine; it is taken
            # again after a pause.
            logger.warning("could not read %s now (%s); it stays in the folder", path.name, exc)
            self._settling.pop(path, None)
            asyncio.get_running_loop().call_later(_UNREADABLE_HOLD_SECONDS, self.source.done, path)
            return None
        finally:
            metrics.PARSE_SECONDS.observe(time.perf_counter() - started)
        self._settling.pop(path, None)
        return event

    def _may_be_unfinished(self, path: Path) -> bool:
        """Whether a file refused as empty or truncated may still be being written: modified within the settle
        window, and first found half-written less than that window ago."""
        now = time.monotonic()
        first = self._settling.setdefault(path, now)
        return now - first < _SETTLE_SECONDS and _recently_modified(path)

    def _look_again(self, path: Path) -> None:
        try:
            self.source.out.put_nowait(path)
        except asyncio.QueueFull:
            self._settling.pop(path, None)
            self.source.done(path)
            self.source.request_sweep()  # the pipeline is full, so the watcher sweeps anyway; make sure

    async def _quarantine(self, path: Path, rejected: RejectedEvent) -> bool:
        """Move the file to events/failed/ and record why; False when it vanished first (nothing to record)."""
        moved = await asyncio.to_thread(
            quarantine, path, self.events_dir, code=rejected.code, reason=rejected.reason
        )
        self.source.done(path)
        if moved is None:
            return False
        metrics.EVENTS_QUARANTINED.labels(reason=rejected.code).inc()
        await sync_to_async(AuditEntry.record)(
            "bridge",
            "event.quarantined",
            object_type="file",
            object_id=shown(path.name)[:200],
            detail=f"{rejected.code}: {shown(rejected.reason)}",
            after={"moved_to": shown(str(moved))},
        )
        return True


def _is_folder(path: Path) -> bool:
    """Whether ``path`` itself (not what a symlink points to) is a directory."""
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def _link_target(path: Path) -> str | None:
    """What the symlink ``path`` points to; None when ``path`` is no symlink (or no longer there)."""
    try:
        return os.readlink(path)
    except OSError:
        return None


def _recently_modified(path: Path) -> bool:
    try:
        return abs(time.time() - path.lstat().st_mtime) < _SETTLE_SECONDS
    except OSError:
        return False


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
