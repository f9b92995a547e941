"""What an event may not be, and the guards that check it before and while JSON is decoded.

`Limits` bounds sizes, lengths and nesting; `RejectedEvent` is the one error every refusal raises, with a
stable `.code` (one of CODES) and a human `.reason`. The guards here work on raw bytes and plain JSON values;
`bridge.events.parse` applies them. Nothing here imports Django.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from itertools import accumulate
from operator import lt, sub
from typing import Any

CODES: tuple[str, ...] = (
    "too_large", "empty", "invalid_utf8", "invalid_json", "too_deep", "not_an_object", "missing_field",
    "wrong_type", "too_long", "bad_timestamp", "bad_text", "bad_data", "unsafe_path", "not_a_file",
    "vanished", "unreadable",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what is accepted. `max_file_bytes` also bounds a mapping's canonical JSON. Lengths are in
    characters; the 200s and 128 match the database columns the event is stored in."""

    max_file_bytes: int = 1_048_576
    max_title: int = 200
    max_description: int = 100_000
    max_depth: int = 32
    max_source: int = 200
    max_task_id: int = 200
    max_event_id: int = 128


DEFAULT_LIMITS = Limits()


class RejectedEvent(Exception):
    """An event that cannot be accepted: `.code` (stable slug, one of CODES) and `.reason` (a sentence)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def too_large(size: int, limits: Limits, *, growing: bool = False) -> RejectedEvent:
    when = "grew to at least" if growing else "is"
    return RejectedEvent("too_large", f"the event {when} {size} bytes; the limit is {limits.max_file_bytes}")


def check_depth(raw: bytes | bytearray, max_depth: int) -> None:
    """Refuse nesting deeper than `max_depth` before json decodes it (its recursion could exhaust the stack).

    Linear in len(raw) and free for the common small event. Bytes that are not valid JSON may get a wrong
    depth here; json rejects them anyway. Raises RejectedEvent("too_deep").
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return
    # Drop escaped backslashes, then escaped quotes, then the strings themselves (every other piece).
    outside = b"".join(raw.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2])
    marks = outside.translate(_BRACKET_WEIGHTS, _NOT_BRACKETS)  # opening -> 2, closing -> 0
    if not marks:
        return
    # Depth after the i-th bracket is 2*opened - (i + 1); stop at the first one past the limit (C-level
    # iteration throughout: a megabyte of "[" is refused in microseconds, not after a Python loop).
    depths = map(sub, accumulate(marks), range(1, len(marks) + 1))
    if next(filter(partial(lt, max_depth), depths), None) is not None:
        raise RejectedEvent("too_deep", f"nested more than {max_depth} levels deep")


def decode_json(text: str) -> Any:
    """json.loads, refusing NaN, Infinity and numbers too large for a float (JSON and PostgreSQL have none).

    Raises ValueError (json.JSONDecodeError for syntax) and RecursionError past the interpreter's limit.
    """
    return _DECODER.decode(text)


def may_hold_bad_text(raw: bytes | bytearray) -> bool:
    """Whether `raw` may decode to a NUL or an unpaired surrogate: only \\u escapes can smuggle those past
    strict UTF-8 and JSON, and most events have none, so the exact check (`plain_json`) is rarely needed."""
    return b"\\u" in raw and _SUSPECT_ESCAPE.search(raw) is not None


def plain_json(value: Any, max_depth: int) -> Any:
    """A fresh copy of `value` made of dict/list/str/int/float/bool/None only, refusing what JSON or the
    database cannot hold: NUL characters and unpaired surrogates (bad_text), non-string keys, NaN/Infinity
    and other types (bad_data), nesting past `max_depth` (too_deep; so a cycle cannot exhaust the stack).
    The reason names where, e.g. "data.tags[2]".
    """
    try:
        return _plain(value, max_depth, 1)
    except _Refused as exc:
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in reversed(exc.path))
        raise RejectedEvent(exc.code, f"{where.lstrip('.') or 'the event'}: {exc.what}") from None


class _Refused(Exception):
    def __init__(self, code: str, what: str) -> None:
        self.code, self.what, self.path = code, what, []


def _plain(value: Any, max_depth: int, depth: int) -> Any:
    # The path is collected only on the way out of a refusal: building it for every value costs ~30%.
    if isinstance(value, str):
        if _BAD_CHARS.search(value):
            raise _Refused("bad_text", "holds a NUL or an unpaired surrogate, which cannot be stored")
        return str(value)
    if value is None or value is True or value is False:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Refused("bad_data", f"{value} is not a JSON number")
        return float(value)
    if isinstance(value, Mapping | list | tuple) and depth > max_depth:
        raise _Refused("too_deep", f"nested deeper than {max_depth} levels")
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Refused("bad_data", f"has a non-string key {key!r}")
            try:
                out[_plain(key, max_depth, depth)] = _plain(item, max_depth, depth + 1)
            except _Refused as exc:
                exc.path.append(key)
                raise
        return out
    if isinstance(value, list | tuple):
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_plain(item, max_depth, depth + 1))
            except _Refused as exc:
                exc.path.append(index)
                raise
        return items
    raise _Refused("bad_data", f"a {type(value).__name__} is not a JSON value")


def _finite_number(text: str) -> float:
    value = float(text)  # "NaN" and "Infinity" reach here through parse_constant
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is not a finite JSON number")
    return value


_DECODER = json.JSONDecoder(parse_constant=_finite_number, parse_float=_finite_number)
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])")
_BRACKET_WEIGHTS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
