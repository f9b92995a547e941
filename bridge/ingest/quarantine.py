"""Quarantine: a file that cannot be accepted is moved to events/failed/ beside a note saying why."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

FAILED_DIR_NAME = "failed"
NOTE_SUFFIX = ".error.json"
# Longest file name most file systems take (bytes); the note and its temp file must fit as well as the file.
_NAME_MAX = 255
_TEMP_EXTRA = len("..tmp")


def failed_dir(events_dir: Path) -> Path:
    return events_dir / FAILED_DIR_NAME


def quarantine(path: Path, events_dir: Path, *, code: str, reason: str) -> Path | None:
    """Move ``path`` into ``events/failed/`` and write ``<name>.error.json`` beside it.

    Returns the quarantined file's new path, or None when the file vanished before it could be moved (another
    worker took it, or the writer deleted it). Never raises for file-system trouble: the watcher must keep going,
    so a failure to move is logged and the note is still written. A name too long to take the note's suffix gets a
    shortened note name (the note's ``quarantined_as`` says which file it is about); names that are not valid
    UTF-8 are shown with escapes (``shown``) in the note and the log.
    """
    target_dir = failed_dir(events_dir)
    try:
        size: int | None = path.lstat().st_size
        target = _move(path, target_dir)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.error("could not move %s to %s: %s", shown(path.name), target_dir, exc)
        size, target = None, path
    if target is None:
        return None
    note = {
        "file": shown(path.name),
        "quarantined_as": shown(target.name),
        "code": code,
        "reason": shown(reason),
        "size_bytes": size,
        "quarantined_at": datetime.now(UTC).isoformat(),
    }
    note_path = target_dir / (_fit(target.name, _NAME_MAX - len(NOTE_SUFFIX) - _TEMP_EXTRA) + NOTE_SUFFIX)
    tmp = note_path.with_name(f".{note_path.name}.tmp")
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(note, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, note_path)
    except OSError as exc:
        logger.error("could not write quarantine note for %s: %s", shown(path.name), exc)
    logger.warning("quarantined %s: %s", shown(path.name), shown(reason))
    return target


def shown(text: str) -> str:
    """``text`` (a file name, or a message quoting one or quoting the event) printable and storable in any
    database: bytes of a name that are not UTF-8 (decoded by Python as lone surrogates) become escapes such as
    ``\\xff``, other lone surrogates ``\\ud800``, and NUL (which PostgreSQL text refuses) ``\\x00``."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def _fit(name: str, room: int) -> str:
    """``name``, or when longer than ``room`` bytes its start plus a short hash of the whole, so distinct long
    names stay distinct."""
    encoded = os.fsencode(name)
    if len(encoded) <= room:
        return name
    digest = hashlib.sha1(encoded).hexdigest()[:10]
    return os.fsdecode(encoded[: room - len(digest) - 1]).encode("utf-8", "ignore").decode() + "~" + digest


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
        tail = f"-{counter}{dot}{suffix}"
        candidate = folder / (_fit(stem, _NAME_MAX - len(os.fsencode(tail))) + tail)
        counter += 1
    return candidate
