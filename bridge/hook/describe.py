"""What the hook tells the owner: hook input turned into events in the bridge's event-file format.

Stop and SubagentStop become task_completion (the description is Claude's last words, when cheaply known),
Notification becomes info_notification, PermissionRequest becomes approval_request whose approval_prompt shows
the tool and its input: the command, the file and a diff summary, or a bounded JSON preview.

The events must pass bridge.events.parse, whose limits (title 200 characters, no NUL or lone surrogate) are
respected here rather than imported: the events package pulls in dataclasses and typing, ~20 ms the hook would
pay on every run. tests/test_hook.py parses what the hook writes with bridge.events.parse to keep them agreed.
"""

from __future__ import annotations

import time

from bridge.hook import jsonlite, transcript

TYPE_CHECKING = False  # see payload.py
if TYPE_CHECKING:
    from typing import Any

    from bridge.hook.payload import HookInput

SOURCE = "claude-code"
OPTIONS = ["Allow", "Deny"]
MAX_TITLE = 200
# Claude's last message: enough to see what it did, short enough to stay one Telegram message.
MAX_DESCRIPTION = 2000
MAX_PROMPT = 3000
MAX_PREVIEW = 1500  # generic JSON preview of a tool's input
PREVIEW_LINES = 5
LINE_CHARS = 160

_NOTIFICATION_TITLES = {
    "permission_prompt": "Claude needs your permission",
    "idle_prompt": "Claude is waiting for your input",
    "elicitation_dialog": "Claude has a question",
    "auth_success": "Claude Code signed in",
}
# The agent is blocked on a human for these; others are for information.
_BLOCKING_NOTIFICATIONS = frozenset({"permission_prompt", "elicitation_dialog"})


def completion_event(hook: HookInput, now: float) -> dict[str, Any]:
    """The task_completion event for a Stop or SubagentStop."""
    who = "Claude"
    if hook.event == "SubagentStop":
        who = f"{hook.agent_type} subagent" if hook.agent_type else "Subagent"
    metadata = _metadata(hook)
    metadata["stop_hook_active"] = hook.stop_hook_active
    return _event(
        hook,
        "task_completion",
        _in_project(f"{who} finished", hook),
        now,
        description=transcript.last_words(hook),
        data={"status": "completed", "metadata": metadata},
    )


def notification_event(hook: HookInput, now: float) -> dict[str, Any]:
    """The info_notification event for a Notification (its message becomes the description)."""
    title = _NOTIFICATION_TITLES.get(hook.notification_type, "Claude Code")
    metadata = _metadata(hook)
    if hook.notification_type:
        metadata["notification_type"] = clean(hook.notification_type, 100)
    data: dict[str, Any] = {"metadata": metadata}
    if hook.notification_type in _BLOCKING_NOTIFICATIONS:
        data["priority"] = "high"
    return _event(
        hook, "info_notification", _in_project(title, hook), now, description=hook.message, data=data
    )


def approval_event(
    hook: HookInput, *, event_id: str, task_id: str, expires_at: float, now: float
) -> dict[str, Any]:
    """The approval_request event for a PermissionRequest, with explicit ids the response will carry back.

    data.metadata.hook_session_id is what makes the bridge offer "Allow for this session"; expires_at is when
    this hook stops waiting (after that Claude Code asks in the terminal).
    """
    tool = clean(hook.tool_name or "a tool", 150)
    metadata = _metadata(hook)
    metadata.update(
        hook_session_id=metadata.pop("session_id", ""), tool_name=tool, expires_at=rfc3339(expires_at)
    )
    event = _event(
        hook,
        "approval_request",
        f"Allow {tool}?",
        now,
        description=_in_project(f"Claude Code asks to use {tool}", hook) + ".",
        data={
            "approval_prompt": tool_summary(hook.tool_name, hook.tool_input, hook.cwd),
            "options": list(OPTIONS),
            "priority": "urgent",
            "metadata": metadata,
        },
    )
    event["event_id"] = event_id
    event["task_id"] = task_id
    return event


def tool_summary(tool_name: str, tool_input: dict[str, Any], cwd: str = "") -> str:
    """What the tool is about to do, as plain text of at most MAX_PROMPT characters."""
    describe = _TOOLS.get(tool_name)
    try:
        text = describe(tool_input, cwd) if describe is not None else ""
    except (TypeError, AttributeError, ValueError):  # an input of an unexpected shape: show it as JSON
        text = ""
    return clean(text or _json_preview(tool_name, tool_input), MAX_PROMPT)


def clean(text: str, limit: int) -> str:
    """`text` cut to `limit` characters (ending in "…" when cut), with NUL and lone surrogates (which no event
    may hold) replaced."""
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "\ufffd")


def rfc3339(epoch: float) -> str:
    micro = int(epoch * 1_000_000) % 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{micro:06d}Z"


def _event(
    hook: HookInput, type_: str, title: str, now: float, *, description: str, data: dict[str, Any]
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": type_,
        "title": clean(title, MAX_TITLE),
        "description": clean(description.strip(), MAX_DESCRIPTION),
        "source": SOURCE,
        "timestamp": rfc3339(now),
        "data": data,
    }
    if hook.session_id:  # one Claude Code session is one task for the bridge: its admin finds them together
        event["task_id"] = clean(hook.session_id, 200)
    return event


def _metadata(hook: HookInput) -> dict[str, Any]:
    return {
        "session_id": clean(hook.session_id, 200),
        "cwd": clean(hook.cwd, 1000),
        "project": clean(hook.project, 200),
        "hook_event": clean(hook.event, 100),
    }


def _in_project(text: str, hook: HookInput) -> str:
    return f"{text} in {hook.project}" if hook.project else text


# --- tool input summaries ------------------------------------------------------------------------------------


def _bash(tool_input: dict[str, Any], cwd: str) -> str:
    command = tool_input.get("command")
    if not isinstance(command, str):
        return ""
    why = tool_input.get("description")
    return (f"{why}\n" if isinstance(why, str) and why.strip() else "") + f"$ {command}"


def _edit(tool_input: dict[str, Any], cwd: str) -> str:
    old, new = tool_input.get("old_string", ""), tool_input.get("new_string", "")
    lines = [
        f"Edit {_path(tool_input, cwd)}" + (" (every occurrence)" if tool_input.get("replace_all") else "")
    ]
    return "\n".join(lines + _diff(str(old), str(new)))


def _multi_edit(tool_input: dict[str, Any], cwd: str) -> str:
    edits = [e for e in tool_input.get("edits") or [] if isinstance(e, dict)]
    lines = [f"Edit {_path(tool_input, cwd)}: {len(edits)} change{'s' if len(edits) != 1 else ''}"]
    for number, edit in enumerate(edits[:3], 1):
        lines.append(f"Change {number}:")
        lines.extend(_diff(str(edit.get("old_string", "")), str(edit.get("new_string", ""))))
    if len(edits) > 3:
        lines.append(f"… and {len(edits) - 3} more changes")
    return "\n".join(lines)


def _write(tool_input: dict[str, Any], cwd: str) -> str:
    content = str(tool_input.get("content", ""))
    size = len(content.encode("utf-8", "replace"))
    head = f"Write {_path(tool_input, cwd)} ({_size(size)}, {_line_count(content)} lines)"
    return "\n".join([head, *_first_lines(content, "  ")])


def _read(tool_input: dict[str, Any], cwd: str) -> str:
    span = [f"{key} {tool_input[key]}" for key in ("offset", "limit") if isinstance(tool_input.get(key), int)]
    return f"Read {_path(tool_input, cwd)}" + (f" ({', '.join(span)})" if span else "")


_TOOLS = {"Bash": _bash, "Edit": _edit, "MultiEdit": _multi_edit, "Write": _write, "Read": _read}


def _diff(old: str, new: str) -> list[str]:
    counts = f"-{_line_count(old)} / +{_line_count(new)} lines"
    return [counts, *_first_lines(old, "- "), *_first_lines(new, "+ ")]


def _first_lines(text: str, mark: str) -> list[str]:
    lines = text.splitlines()
    shown = [
        mark + (line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…")
        for line in lines[:PREVIEW_LINES]
    ]
    if len(lines) > PREVIEW_LINES:
        shown.append(f"{mark}… ({len(lines) - PREVIEW_LINES} more lines)")
    return shown


def _line_count(text: str) -> int:
    return len(text.splitlines())


def _path(tool_input: dict[str, Any], cwd: str) -> str:
    path = tool_input.get("file_path") or tool_input.get("notebook_path")
    if not isinstance(path, str) or not path:
        return "(no file given)"
    if cwd and path.startswith(cwd.rstrip("/") + "/"):
        return path[len(cwd.rstrip("/")) + 1 :]
    return path


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _json_preview(tool_name: str, tool_input: dict[str, Any]) -> str:
    text = jsonlite.dumps(tool_input, ensure_ascii=False)  # the input came as JSON: it encodes
    if len(text) > MAX_PREVIEW:
        text = text[: MAX_PREVIEW - 1] + "…"
    return f"{tool_name or 'Tool'} with input:\n{text}"
