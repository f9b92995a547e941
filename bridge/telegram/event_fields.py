"""The `data` fields of an event as lines of Telegram HTML: which fields a style shows, in what order, how.

`field_lines(event, style)` never raises on odd data (an Event built directly may hold any JSON), and every
value reaches the markup through escape_html. Concise shows the fields that matter for the event's category,
lists of files cut to five with "+N more"; detailed shows every known field, then metadata and unknown keys
compactly. Nothing here imports Django.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.telegram.escape import escape_attribute, escape_html, is_web_url
from bridge.telegram.figures import (
    as_number,
    human_bytes,
    human_duration,
    number,
    progress_line,
    tests_line,
    threshold_line,
)

if TYPE_CHECKING:
    from bridge.events.schema import Event

CONCISE_FILES = 5
_INLINE_CODE_MAX = 120  # longer or multi-line values go in a <pre> block
_SEVERITY = {"low": "🟢", "medium": "🟡", "high": "🟠", "critical": "🔴"}

# Shown by `field_lines` through dedicated helpers, or elsewhere (approval section, keyboard).
_SPECIAL = frozenset(
    {"approval_prompt", "options", "actions", "metadata", "current", "total", "percentage", "current_value"}
    | {"threshold", "test_count", "tests_passed", "tests_failed"}
)
# Shown on their partner's line when the partner is there: line_number with file_path, arguments with command.
_MERGED = {"line_number": "file_path", "arguments": "command"}
# Shown in detailed style only, unless the event's category asks for them (_CONCISE_EXTRA).
_DETAILED_ONLY = frozenset(
    {"language", "function_name", "class_name", "module_name", "request_id", "user_id", "category", "tags"}
    | {"line_number", "arguments"}
    | {"priority", "success", "code_snippet", "stack_trace", "memory_usage_mb", "cpu_usage_percent"}
    | {"disk_usage_mb", "network_bytes"}
)
_CONCISE_EXTRA: dict[str, frozenset[str]] = {
    "system_monitoring": frozenset(
        {"memory_usage_mb", "cpu_usage_percent", "disk_usage_mb", "network_bytes"}
    ),
    "code_operations": frozenset({"language", "function_name", "class_name", "module_name"}),
}


def field_lines(event: Event, style: str) -> list[str]:
    """The HTML lines describing `event.data` in `style` ("concise" or "detailed")."""
    data = event.data if isinstance(event.data, dict) else {}
    detailed = style == "detailed"
    shown = _CONCISE_EXTRA.get(event.category, frozenset())
    lines: list[str] = []
    for key, label, kind in _FIELDS:
        if kind == "figures":  # progress, threshold and test counts read best right after the outcome
            lines.extend(
                line for line in (progress_line(data), threshold_line(data), tests_line(data)) if line
            )
            continue
        value = data.get(key)
        if _blank(value) or (not detailed and key in _DETAILED_ONLY and key not in shown):
            continue
        if key in _MERGED and not _blank(data.get(_MERGED[key])):
            continue  # already shown with its partner
        lines.extend(_RENDERERS[kind](label, value, data, detailed))
    if detailed:
        lines.extend(_extras(data))
    return lines


def compact(value: Any) -> str:
    """A value as short plain text: strings as they are, numbers plainly, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return number(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _label(label: str) -> str:
    return f"<b>{label}:</b>"


def _text(label: str, value: Any, data: dict, detailed: bool) -> list[str]:
    text = escape_html(compact(value))
    return [f"{_label(label)}\n{text}" if "\n" in text else f"{_label(label)} {text}"]


def _code(label: str, value: Any, data: dict, detailed: bool) -> list[str]:
    text = compact(value)
    if "\n" in text or len(text) > _INLINE_CODE_MAX:
        return [f"{_label(label)}\n<pre>{escape_html(text)}</pre>"]
    return [f"{_label(label)} <code>{escape_html(text)}</code>"]


def _file(label: str, value: Any, data: dict, detailed: bool) -> list[str]:
    line = data.get("line_number")
    suffix = f":{line}" if isinstance(line, int) and not isinstance(line, bool) else ""
    return _code(label, f"{compact(value)}{suffix}", data, detailed)


def _command(label: str, value: Any, data: dict, detailed: bool) -> list[str]:
    arguments = data.get("arguments")
    if isinstance(arguments, list) and arguments:
        value = " ".join([compact(value), *(compact(a) for a in arguments)])
    return _code(label, value, data, detailed)


def _commit(label: str, value: Any, data: dict, detailed: bool) -> list[str]:
    text = compact(value)
    return _code(label, text if detailed else text[:12], data, detailed)


def _block(label: str, value: Any, data: dict, detailed: bool) -> list[str]:
    return [f"{_label(label)}\n<pre>{escape_html(compact(value))}</pre>"]


def _files(label: str, value: Any, data: dict, detailed: bool) -> list[str]:
    items = [compact(item) for item in value] if isinstance(value, list) else [compact(value)]
    if detailed:
        return [f"{_label(label)} {len(items)}", *(f"• <code>{escape_html(i)}</code>" for i in items)]
    shown = ", ".join(f"<code>{escape_html(i)}</code>" for i in items[:CONCISE_FILES])
    more = f" +{len(items) - CONCISE_FILES} more" if len(items) > CONCISE_FILES else ""
    return [f"{_label(label)} {shown}{more}"]


def _listing(label: str, value: Any, data: dict, detailed: bool) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [f"{_label(label)} {escape_html(', '.join(compact(i) for i in items))}"]


def _link(label: str, value: Any, data: dict, detailed: bool) -> list[str]:
    if is_web_url(value):
        return [f'{_label(label)} <a href="{escape_attribute(value)}">{escape_html(value)}</a>']
    return _code(label, value, data, detailed)


def _severity(label: str, value: Any, data: dict, detailed: bool) -> list[str]:
    emoji = _SEVERITY.get(value, "") if isinstance(value, str) else ""
    return [f"{_label(label)} {emoji + ' ' if emoji else ''}{escape_html(compact(value))}"]


def _measure(formatter: Callable[[float], str]) -> Callable[[str, Any, dict, bool], list[str]]:
    def render(label: str, value: Any, data: dict, detailed: bool) -> list[str]:
        amount = as_number(value)
        shown = formatter(amount) if amount is not None else compact(value)
        return [f"{_label(label)} {escape_html(shown)}"]

    return render


def _extras(data: dict) -> list[str]:
    """Metadata and unknown keys, one compact line each (detailed style)."""
    lines = []
    meta = data.get("metadata")
    if isinstance(meta, dict) and meta:
        pairs = " · ".join(f"{escape_html(k)}: {escape_html(compact(v))}" for k, v in meta.items())
        lines.append(f"{_label('Metadata')} {pairs}")
    unknown = {
        k: v for k, v in data.items() if k not in _KNOWN and not (k == "metric" and "current_value" in data)
    }
    if unknown:
        lines.append(
            f"{_label('Other')} "
            + " · ".join(f"{escape_html(k)}: {escape_html(compact(v))}" for k, v in unknown.items())
        )
    if isinstance(data.get("actions"), list) and data["actions"]:
        lines.append(f"{_label('Actions')} {len(data['actions'])} (buttons below)")
    return lines


_RENDERERS: dict[str, Callable[[str, Any, dict, bool], list[str]]] = {
    "text": _text,
    "code": _code,
    "file": _file,
    "command": _command,
    "commit": _commit,
    "block": _block,
    "files": _files,
    "list": _listing,
    "link": _link,
    "severity": _severity,
    "percent": _measure(lambda n: f"{number(round(n, 2))}%"),
    "duration": _measure(human_duration),
    "mb": _measure(lambda n: human_bytes(n * 1024 * 1024)),
    "bytes": _measure(human_bytes),
    "number": _measure(number),
}

# (data key, label, renderer), in display order.
_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("status", "Status", "text"),
    ("results", "Results", "text"),
    ("", "", "figures"),
    ("success", "Success", "text"),
    ("severity", "Severity", "severity"),
    ("priority", "Priority", "text"),
    ("error_message", "Error", "code"),
    ("error_code", "Error code", "code"),
    ("exit_code", "Exit code", "code"),
    ("coverage_percentage", "Coverage", "percent"),
    ("duration_ms", "Duration", "duration"),
    ("build_target", "Target", "code"),
    ("commit_hash", "Commit", "commit"),
    ("branch_name", "Branch", "code"),
    ("author", "Author", "text"),
    ("commit_message", "Message", "text"),
    ("file_path", "File", "file"),
    ("line_number", "Line", "number"),
    ("directory", "Directory", "code"),
    ("files_affected", "Files", "files"),
    ("files_changed", "Files changed", "files"),
    ("command", "Command", "command"),
    ("arguments", "Arguments", "list"),
    ("service_name", "Service", "text"),
    ("endpoint", "Endpoint", "code"),
    ("response_code", "Response code", "code"),
    ("request_id", "Request", "code"),
    ("memory_usage_mb", "Memory", "mb"),
    ("cpu_usage_percent", "CPU", "percent"),
    ("disk_usage_mb", "Disk", "mb"),
    ("network_bytes", "Network", "bytes"),
    ("language", "Language", "text"),
    ("module_name", "Module", "code"),
    ("class_name", "Class", "code"),
    ("function_name", "Function", "code"),
    ("user_id", "User", "code"),
    ("category", "Category", "text"),
    ("tags", "Tags", "list"),
    ("url", "Link", "link"),
    ("code_snippet", "Code", "block"),
    ("stack_trace", "Stack trace", "block"),
)
_KNOWN = frozenset(key for key, _, _ in _FIELDS if key) | _SPECIAL
