"""Turning event files, raw bytes and mappings into Events: lenient in what it accepts, strict in what it stores.

Every refusal is a `RejectedEvent` with a human `.reason` and a stable `.code`, one of CODES. This is the hot
path (thousands of events per second), so the common case avoids pydantic, extra copies and extra syscalls.
Nothing here imports Django.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import reprlib
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.events.limits import (
    CODES,
    DEFAULT_LIMITS,
    Limits,
    RejectedEvent,
    check_depth,
    decode_json,
    may_hold_bad_text,
    plain_json,
    too_large,
)
from bridge.events.schema import DEFAULT_SOURCE, ORIGINS, Event, InvalidData, validate_data

__all__ = ["CODES", "DEFAULT_LIMITS", "Limits", "RejectedEvent", "parse_bytes", "parse_file", "parse_mapping"]


def parse_file(path: Path, *, root: Path | None = None, limits: Limits = DEFAULT_LIMITS) -> Event:
    """Read and parse one event file.

    A symlink is followed only if its target resolves inside `root` (when given). The size is checked with
    fstat before anything is read. Raises RejectedEvent (codes: vanished, unsafe_path, not_a_file, too_large,
    unreadable, and those of parse_bytes); raises OSError only when this process is short of resources
    (EMFILE, ENOMEM, EIO, ...), which says nothing about the file.
    """
    try:
        fd = os.open(_open_target(path, root), _OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise RejectedEvent("not_a_file", f"{path.name} is not a regular file")
            if st.st_size > limits.max_file_bytes:
                raise too_large(st.st_size, limits)
            raw = _read_bounded(fd, st.st_size, limits)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise RejectedEvent("vanished", f"{path.name} disappeared before it could be read") from None
    except OSError as exc:
        if exc.errno in _RESOURCE_ERRORS:
            raise
        if exc.errno == errno.ELOOP:
            raise RejectedEvent(
                "unsafe_path", f"{path.name} was replaced by a symlink while opened"
            ) from None
        raise RejectedEvent("unreadable", f"{path.name} cannot be read: {exc.strerror or exc}") from None
    text, digest, suspect = _decode(raw, limits)
    # The bytes are done with: dropping them before json builds its objects takes a file's size off the peak.
    del raw
    return _parse_text(text, digest, suspect, "file", limits)


def parse_bytes(raw: bytes | bytearray, *, origin: str = "file", limits: Limits = DEFAULT_LIMITS) -> Event:
    """Parse one JSON event document. The derived event_id comes from sha256(raw), so identical bytes get the
    same id. Raises RejectedEvent (codes: too_large, empty, invalid_utf8, too_deep, invalid_json, bad_text,
    not_an_object, and those of parse_mapping)."""
    if len(raw) > limits.max_file_bytes:
        raise too_large(len(raw), limits)
    return _parse_text(*_decode(raw, limits), origin, limits)


def _decode(raw: bytes | bytearray, limits: Limits) -> tuple[str, str, bool]:
    """The text of `raw`, its sha256 (hex), and whether it may hold bad text: all that needs the bytes."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RejectedEvent("invalid_utf8", f"not valid UTF-8 (byte {exc.start}: {exc.reason})") from None
    check_depth(raw, limits.max_depth)
    return text, hashlib.sha256(raw).hexdigest(), may_hold_bad_text(raw)


def _parse_text(text: str, digest: str, suspect: bool, origin: str, limits: Limits) -> Event:
    try:
        obj = decode_json(text)
    except RecursionError:
        raise RejectedEvent("too_deep", f"nested deeper than {limits.max_depth} levels") from None
    except ValueError as exc:
        if not text.strip():
            raise RejectedEvent("empty", "the event is empty (no JSON in it)") from None
        raise RejectedEvent("invalid_json", f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RejectedEvent("not_an_object", f"the event must be a JSON object, not {_json_type(obj)}")
    if suspect:
        plain_json(obj, limits.max_depth)
    return _build(obj, origin, digest, limits, None)


def parse_mapping(
    obj: Any,
    *,
    origin: str,
    raw_digest: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> Event:
    """Validate an event given as a mapping (MCP call, hook, shell) and build the Event from a copy of it.

    `raw_digest` (hex) gives the event_id when none is set; otherwise it is sha256 of the canonical JSON (sorted
    keys, compact). `now` is the default timestamp. Raises RejectedEvent (codes: not_an_object, too_deep,
    bad_text, bad_data, too_large, missing_field, empty, wrong_type, too_long, bad_timestamp); raises
    ValueError for an `origin` outside ORIGINS (a caller's bug).
    """
    if not isinstance(obj, Mapping):
        raise RejectedEvent("not_an_object", f"the event must be a JSON object, not {_json_type(obj)}")
    plain = plain_json(obj, limits.max_depth)
    canonical = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(canonical) > limits.max_file_bytes:
        raise too_large(len(canonical), limits)
    return _build(plain, origin, raw_digest or hashlib.sha256(canonical).hexdigest(), limits, now)


def _build(obj: dict[str, Any], origin: str, digest: str, limits: Limits, now: datetime | None) -> Event:
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {', '.join(ORIGINS)}, not {origin!r}")
    type_ = _required_text(obj, "type")
    if not _TYPE_RE.fullmatch(type_):
        raise RejectedEvent(
            "wrong_type",
            f"field 'type' must be 1-64 lowercase letters, digits or underscores, got {reprlib.repr(type_)}",
        )
    title = _required_text(obj, "title").strip()
    if not title:
        raise RejectedEvent("empty", "field 'title' is empty")
    _check_length("title", title, limits.max_title)
    data = obj.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise _wrong_type("data", "an object", data)
    elif data:
        try:
            validate_data(data)
        except InvalidData as exc:
            raise RejectedEvent("bad_data", str(exc)) from None
    retry_count = obj.get("retry_count", 0)
    if retry_count is None:
        retry_count = 0
    elif type(retry_count) is not int or retry_count < 0:
        raise _wrong_type("retry_count", "a non-negative integer", retry_count)
    return Event(
        event_id=_identifier(obj, "event_id", limits.max_event_id) or digest[:32],
        type=type_,
        title=title,
        description=_optional_text(obj, "description", limits.max_description) or "",
        source=(_optional_text(obj, "source", limits.max_source) or "").strip() or DEFAULT_SOURCE,
        timestamp=_timestamp(obj.get("timestamp"), now),
        task_id=_identifier(obj, "task_id", limits.max_task_id),
        data=data,
        origin=origin,
        correlation_id=_optional_text(obj, "correlation_id"),
        parent_event_id=_optional_text(obj, "parent_event_id"),
        retry_count=retry_count,
        processing_status=_optional_text(obj, "processing_status"),
        schema_version=_identifier(obj, "schema_version", None, numbers=True) or None,
        created_at=_optional_text(obj, "created_at"),
        processed_at=_optional_text(obj, "processed_at"),
    )


def _required_text(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        raise RejectedEvent("missing_field", f"required field {name!r} is missing")
    if not isinstance(value, str):
        raise _wrong_type(name, "a string", value)
    if not value:
        raise RejectedEvent("empty", f"field {name!r} is empty")
    return value


def _optional_text(obj: dict[str, Any], name: str, limit: int | None = None) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _wrong_type(name, "a string", value)
    if limit is not None:
        _check_length(name, value, limit)
    return value


def _identifier(obj: dict[str, Any], name: str, limit: int | None, *, numbers: bool = False) -> str:
    """A string field that agents also send as a number (task ids); "" when absent."""
    value = obj.get(name)
    if value is None:
        return ""
    if isinstance(value, int | float if numbers else int) and not isinstance(value, bool):
        value = str(value)
    elif not isinstance(value, str):
        raise _wrong_type(name, "a string or a number" if numbers else "a string or an integer", value)
    value = value.strip()
    if limit is not None:
        _check_length(name, value, limit)
    return value


def _timestamp(value: Any, now: datetime | None) -> datetime:
    if value is None or value == "":
        if now is None:
            return datetime.now(UTC)
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    if not isinstance(value, str):
        raise _wrong_type("timestamp", "an RFC 3339 string", value)
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise RejectedEvent(
            "bad_timestamp", f"field 'timestamp' is not an RFC 3339 date-time: {reprlib.repr(value)}"
        ) from None


def _check_length(name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise RejectedEvent(
            "too_long", f"field {name!r} is {len(value)} characters long; the limit is {limit}"
        )


def _read_bounded(fd: int, size: int, limits: Limits) -> bytes | bytearray:
    """The bytes of a regular file that fstat said holds `size` <= the limit, in one read when small and in
    _CHUNK reads when large. Never more than limit + 1 bytes are asked for in all, so a file that grows while
    it is read costs at most that much and is refused (too_large) as soon as it passes the limit. A short
    read means end of file, which saves the empty read that would otherwise confirm it."""
    limit = limits.max_file_bytes
    if size <= _SMALL_FILE:
        # Asking for one byte more than fstat said: a short read means end of file, so one syscall in all.
        first = os.read(fd, size + 1)
        if len(first) <= size:
            return first
        buffer = bytearray(first)
    else:
        buffer = bytearray()
    while len(buffer) <= limit:
        want = min(_CHUNK, limit + 1 - len(buffer))
        chunk = os.read(fd, want)
        buffer += chunk
        if len(chunk) < want:
            return buffer
    raise too_large(len(buffer), limits, growing=True)


def _open_target(path: Path, root: Path | None) -> str | Path:
    if not stat.S_ISLNK(os.lstat(path).st_mode):
        return path
    target = os.path.realpath(path)
    if root is not None:
        real_root = os.path.realpath(root)
        if os.path.commonpath([target, real_root]) != real_root:
            raise RejectedEvent("unsafe_path", f"{path.name} is a symlink to {target}, outside {root}")
    return target


def _wrong_type(name: str, expected: str, value: Any) -> RejectedEvent:
    return RejectedEvent("wrong_type", f"field {name!r} must be {expected}, got {_json_type(value)}")


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


_TYPE_RE = re.compile(r"[a-z0-9_]{1,64}")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer"}
_JSON_TYPES.update({float: "a number", type(None): "null"})
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# Up to 256 KiB a single read costs less than a loop; past it, reads of 256 KiB bound what one read holds
# (and what a growing file can add) while keeping the syscalls for a 1 MiB file to five.
_SMALL_FILE = 256 * 1024
_CHUNK = 256 * 1024
_RESOURCE_ERRORS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS, errno.EIO, errno.EINTR}
)
