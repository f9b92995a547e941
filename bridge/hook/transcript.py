"""Claude's last words in a session: what a task_completion event shows as its description.

Recent Claude Code versions hand them to Stop and SubagentStop hooks as last_assistant_message; otherwise they
are the text of the last assistant entry of the transcript (JSON lines). Only the tail of the transcript is read
(TAIL_BYTES): transcripts grow to many megabytes, and the hook must write its event within milliseconds. A last
message longer than the tail, or a transcript not yet flushed, simply gives no description.
"""

from __future__ import annotations

from bridge.hook import files, jsonlite

TYPE_CHECKING = False  # see payload.py
if TYPE_CHECKING:
    from typing import Any

    from bridge.hook.payload import HookInput

TAIL_BYTES = 128 * 1024
MAX_ENTRIES = 50  # assistant entries looked at, newest first, before giving up (tool calls have no text)


def last_words(hook: HookInput) -> str:
    """The last thing Claude said in this session (or subagent run), or "" when it is not cheaply known."""
    if hook.last_assistant_message:
        return hook.last_assistant_message
    # A subagent's words are in its own transcript; the session's would be the main agent's.
    path = hook.agent_transcript_path if hook.event == "SubagentStop" else hook.transcript_path
    return last_assistant_text(files.read_tail(path, TAIL_BYTES)) if path else ""


def last_assistant_text(tail: bytes) -> str:
    """The text of the last assistant entry with text in `tail` (transcript lines; the first may be cut)."""
    looked = 0
    for line in reversed(tail.splitlines()):
        if b'"assistant"' not in line:
            continue
        looked += 1
        if looked > MAX_ENTRIES:
            break
        try:
            entry = jsonlite.loads(line)
        except (ValueError, RecursionError):
            continue
        text = _text_of(entry) if isinstance(entry, dict) and entry.get("type") == "assistant" else ""
        if text.strip():
            return text.strip()
    return ""


def _text_of(entry: dict[str, Any]) -> str:
    message = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [
        b["text"]
        for b in content
        if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
    ]
    return "\n".join(texts)
