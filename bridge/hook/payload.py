"""Claude Code's hook input, parsed once into a HookInput.

Claude Code writes one JSON object on the hook's stdin: hook_event_name, session_id, cwd and transcript_path
always; tool_name and tool_input for tool hooks (PermissionRequest); message and notification_type for
Notification; stop_hook_active (and, in recent versions, last_assistant_message) for Stop and SubagentStop, which also
carries agent_type and agent_transcript_path.
Fields of the wrong type are treated as absent: a newer Claude Code changing one field must not cost the owner
the whole notification.
"""

from __future__ import annotations

import os

from bridge.hook import jsonlite

# typing costs ~5 ms of start-up; annotations are never evaluated here (PEP 563), so only type checkers need it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_INPUT_BYTES = 16 * 1024 * 1024  # a Write of a large file arrives whole in tool_input.content


class BadHookInput(ValueError):
    """stdin is not a JSON object naming a hook event; the message says what it was."""


class HookInput:
    """One hook invocation. Text fields are "" when absent; `tool_input` is {} when absent."""

    __slots__ = (
        "agent_transcript_path",
        "agent_type",
        "cwd",
        "event",
        "last_assistant_message",
        "message",
        "notification_type",
        "session_id",
        "stop_hook_active",
        "tool_input",
        "tool_name",
        "transcript_path",
    )

    def __init__(self, obj: dict[str, Any]) -> None:
        self.event = _text(obj, "hook_event_name")
        self.session_id = _text(obj, "session_id")
        self.cwd = _text(obj, "cwd")
        self.transcript_path = _text(obj, "transcript_path")
        self.tool_name = _text(obj, "tool_name")
        tool_input = obj.get("tool_input")
        self.tool_input: dict[str, Any] = tool_input if isinstance(tool_input, dict) else {}
        self.message = _text(obj, "message")
        self.notification_type = _text(obj, "notification_type")
        self.stop_hook_active = obj.get("stop_hook_active") is True
        self.last_assistant_message = _text(obj, "last_assistant_message")
        self.agent_type = _text(obj, "agent_type")
        self.agent_transcript_path = _text(obj, "agent_transcript_path")

    @property
    def project(self) -> str:
        """The project folder's name, as people call the project ("" when cwd is unknown)."""
        return os.path.basename(self.cwd.rstrip("/\\"))

    @classmethod
    def parse(cls, raw: bytes) -> HookInput:
        """The HookInput in `raw` (UTF-8 JSON). Raises BadHookInput when it is not a JSON object with a
        hook_event_name, or is larger than MAX_INPUT_BYTES."""
        if len(raw) > MAX_INPUT_BYTES:
            raise BadHookInput(f"hook input of {len(raw)} bytes is over the {MAX_INPUT_BYTES} byte limit")
        try:
            obj = jsonlite.loads(raw)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise BadHookInput(f"hook input is not JSON: {str(exc)[:120]}") from None
        if not isinstance(obj, dict):
            raise BadHookInput(f"hook input is a JSON {type(obj).__name__}, not an object")
        hook = cls(obj)
        if not hook.event:
            raise BadHookInput("hook input has no hook_event_name")
        return hook


def _text(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    return value if isinstance(value, str) else ""
