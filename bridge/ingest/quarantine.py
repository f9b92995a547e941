"""Quarantine: a file that cannot be accepted is moved to events/failed/ beside a note saying why."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

FAILED_DIR_NAME = "failed"


def failed_dir(events_dir: Path) -> Path:
    return events_dir / FAILED_DIR_NAME


def quarantine(path: Path, events_dir: Path, *, code: str, reason: str) -> Path | None:
    """Move ``path`` into ``events/failed/`` and write ``<name>.error.json`` beside it.

    Returns the quarantined file's new path, or None when the file vanished before it could be moved (another
    worker took it, or the writer deleted it). Never raises for file-system trouble: the watcher must keep going,
    so a failure to move is logged and the note is still written.
    """
    target_dir = failed_dir(events_dir)
    try:
        size: int | None = path.lstat().st_size
        target = _move(path, target_dir)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.error("could not move %s to %s: %s", path.name, target_dir, exc)
        size, target = None, path
    if target is None:
        return None
    note = {
        "file": path.name,
        "quarantined_as": target.name,
        "code": code,
        "reason": reason,
        "size_bytes": size,
        "quarantined_at": datetime.now(UTC).isoformat(),
    }
    note_path = target_dir / f"{target.name}.error.json"
    tmp = note_path.with_name(f".{note_path.name}.tmp")
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(note, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, note_path)
    except OSError as exc:
        logger.error("could not write quarantine note for %s: %s", path.name, exc)
    logger.warning("quarantined %s: %s", path.name, reason)
    return target


def _move(path: Path, target_dir: Path) -> Path | None:
    """Rename ``path`` into ``target_dir`` under a free name; None when it vanished first. The folder is made by
    the first real quarantine, so files that merely vanish leave no empty events/failed/ behind."""
    target = _free_name(target_dir, path.name)
    try:
        # rename() moves a symlink itself, never the file it points to.
        os.rename(path, target)
    except FileNotFoundError:
        if not os.path.lexists(path):
            return None
        target_dir.mkdir(parents=True, exist_ok=True)
        target = _free_name(target_dir, path.name)
        os.rename(path, target)
    return target


def _free_name(folder: Path, name: str) -> Path:
    """``name`` in ``folder``, or ``name`` with a counter when an earlier file of that name is already there."""
    candidate = folder / name
    stem, dot, suffix = name.partition(".")
    counter = 1
    while candidate.exists() or candidate.is_symlink():
        candidate = folder / f"{stem}-{counter}{dot}{suffix}"
        counter += 1
    return candidate
