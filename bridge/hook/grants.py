""" "Allow for this session": tools the owner approved for one Claude Code session, until a time limit.

Grants live in $CC_TELEGRAM_HOME/hook_grants.json as {"grants": [{"session_id", "tool_name", "expires_at"}]}
(expires_at in Unix seconds), rewritten atomically with the expired ones dropped. Two hooks granting in the same
instant may lose one grant (the last writer wins): that costs one more question on Telegram, never a wrong
"allow", so there is no lock. A grant is never made for an empty session id or tool name.
"""

from __future__ import annotations

import os

from bridge.hook import files

TYPE_CHECKING = False  # see payload.py
if TYPE_CHECKING:
    from typing import Any

MAX_GRANTS = 1000  # a bound on the file, whatever happens: the soonest to expire are dropped first


def is_granted(path: str, session_id: str, tool_name: str, now: float) -> bool:
    """Whether `tool_name` is allowed for `session_id` at `now` by a grant in the file at `path`."""
    if not session_id or not tool_name:
        return False
    return any(
        g["session_id"] == session_id and g["tool_name"] == tool_name and g["expires_at"] > now
        for g in _load(path)
    )


def grant(path: str, session_id: str, tool_name: str, expires_at: float, now: float) -> None:
    """Allow `tool_name` for `session_id` until `expires_at`. Raises OSError when the file cannot be written."""
    if not session_id or not tool_name:
        return
    kept = [
        g
        for g in _load(path)
        if g["expires_at"] > now and (g["session_id"], g["tool_name"]) != (session_id, tool_name)
    ]
    kept.append({"session_id": session_id, "tool_name": tool_name, "expires_at": expires_at})
    kept.sort(key=lambda g: g["expires_at"])
    files.write_json(os.path.dirname(path), os.path.basename(path), {"grants": kept[-MAX_GRANTS:]})


def _load(path: str) -> list[dict[str, Any]]:
    """The well-formed grants in the file; a missing or damaged file holds none."""
    document = files.read_json(path)
    entries = document.get("grants") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return []
    return [
        g
        for g in entries
        if isinstance(g, dict)
        and isinstance(g.get("session_id"), str)
        and isinstance(g.get("tool_name"), str)
        and isinstance(g.get("expires_at"), int | float)
        and not isinstance(g.get("expires_at"), bool)
    ]
