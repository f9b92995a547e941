"""Numbers as people read them in a message: durations, sizes, progress bars, thresholds, test counts.

The `*_line` helpers read `data` defensively (a wrong type means "not there", never an exception) and return one
HTML line or None; their only non-literal text goes through escape_html. Nothing here imports Django.
"""

from __future__ import annotations

import math
from typing import Any

from bridge.telegram.escape import escape_html

_BAR_CELLS = 10


def human_duration(ms: float) -> str:
    """850 ms, 1.2 s, 3 min 5 s, 2 h 5 min, 3 d 4 h."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}".removesuffix(".0") + " s"
    total = round(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if total >= size:
            major, rest = divmod(total, size)
            minor = rest // sub_size
            return f"{major} {unit} {minor} {sub}" if minor else f"{major} {unit}"
    return f"{total} s"


def human_bytes(count: float) -> str:
    """512 B, 1.5 KB, 2.3 MB ... (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{number(round(count, 1))} {unit}"
        count /= 1024
    return f"{count} TB"  # not reached


def number(value: Any) -> str:
    """An int as is; a float with at most two decimals and no trailing zeros (87.5, 3, 0.25)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value)


def as_number(value: Any) -> float | None:
    """`value` if it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def progress_line(data: dict[str, Any]) -> str | None:
    """A 10-cell bar from current/total/percentage, each looked up in data, then in data.metadata."""
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    current, total, percent = (
        next((n for n in (as_number(data.get(k)), as_number(meta.get(k))) if n is not None), None)
        for k in ("current", "total", "percentage")
    )
    if percent is None and current is not None and total:
        percent = current / total * 100
    if percent is None:
        return None
    filled = round(max(0.0, min(100.0, percent)) / 100 * _BAR_CELLS)
    counts = f" ({number(current)}/{number(total)})" if current is not None and total is not None else ""
    bar = "▓" * filled + "░" * (_BAR_CELLS - filled)
    return f"<b>Progress:</b> {bar} {number(round(percent, 1))}%{counts}"


def threshold_line(data: dict[str, Any]) -> str | None:
    """current_value against threshold, named by data.metric or data.metadata.metric."""
    value, limit = as_number(data.get("current_value")), as_number(data.get("threshold"))
    if value is None:
        return None
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    named = [m for m in (data.get("metric"), meta.get("metric")) if isinstance(m, str) and m.strip()]
    metric = named[0] if named else "Value"
    if limit is None:
        return f"<b>{escape_html(metric)}:</b> {number(value)}"
    note = "over" if value > limit else "within"
    if value > limit and limit > 0:
        note = f"{number(round((value - limit) / limit * 100, 1))}% over"
    return f"<b>{escape_html(metric)}:</b> {number(value)} (threshold {number(limit)}, {note})"


def tests_line(data: dict[str, Any]) -> str | None:
    """tests_passed, tests_failed and test_count on one line."""
    passed, failed, count = (as_number(data.get(k)) for k in ("tests_passed", "tests_failed", "test_count"))
    pieces = []
    if passed is not None:
        pieces.append(f"✅ {number(passed)} passed")
    if failed is not None:
        pieces.append(f"{'❌' if failed else '✅'} {number(failed)} failed")
    if count is not None:
        pieces.append(f"{number(count)} total")
    return f"<b>Tests:</b> {' · '.join(pieces)}" if pieces else None
