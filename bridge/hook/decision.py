"""Waiting for the owner's answer to one approval, and the answer as Claude Code reads it.

The bridge writes a response file (`telegram_callback_<user>_<time>_<suffix>.json`, DESIGN.md "Responses") for
each button press, carrying the event_id and task_id of the approval it answers, a decision ("approved",
"denied", "timeout", or "answered" for another option) and the callback_data (`approve_<ref>`, `deny_<ref>`,
`always_<ref>`: "Allow for this session").

How it waits: a poll, every Config.poll_interval (10 ms), costing one stat() of the responses folder while
nothing changes (files.NewFiles); only files that arrive after the hook started are read, each once. An inotify
watcher (watchfiles) would answer a few milliseconds sooner but costs more to import than the whole hook takes
to write its event, on every run.

How it knows the bridge is not running: the bridge removes an event file from the events folder only once it
has stored the event. An approval still lying there after Config.pickup seconds means nobody is taking events,
so the hook takes it back (a bridge started later must not send a stale question) and Claude Code asks in the
terminal. This proof of life needs no pid file or heartbeat, and holds however and wherever the bridge runs.
A file the bridge refused is moved to events/failed/ (DESIGN.md): no answer will come, so the hook stops then.
"""

from __future__ import annotations

import os
import time

from bridge.hook import files, jsonlite

TYPE_CHECKING = False  # see payload.py
if TYPE_CHECKING:
    from collections.abc import Callable

    from bridge.hook.config import Config

RESPONSE_PREFIX = "telegram_callback_"
FAILED_DIR = "failed"  # where the bridge moves event files it refuses
MAX_RESPONSE_BYTES = 64 * 1024
ALLOW, DENY = "allow", "deny"
_APPROVED = frozenset({"approved", "approve", "always"})
_DENIED = frozenset({"denied", "deny"})
# The approval is closed without an allow or a deny: Claude Code must ask for itself.
_CLOSED = {"timeout": "expired", "expired": "expired", "answered": "answered"}
_ACTION_DECISIONS = {"approve": "approved", "always": "approved", "deny": "denied"}


class Verdict:
    """The outcome of waiting: `behavior` ALLOW or DENY, or None when Claude Code should ask for itself.

    `reason` says why ("approved", "denied", "granted", "expired", "answered", "timeout", "bridge_down",
    "refused"); `by` names who
    decided; `for_session` is set by "Allow for this session".
    """

    __slots__ = ("behavior", "by", "for_session", "reason")

    def __init__(self, behavior: str | None, reason: str, *, by: str = "", for_session: bool = False) -> None:
        self.behavior = behavior
        self.reason = reason
        self.by = by
        self.for_session = for_session

    def output(self) -> str:
        """The line to print for Claude Code: its PermissionRequest decision, or "" to print nothing."""
        if self.behavior is None:
            return ""
        decision = {"behavior": self.behavior}
        if self.behavior == DENY:
            decision["message"] = f"Denied from Telegram by {self.by or 'the owner'}"
        return jsonlite.dumps(
            {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}}
        )


def read_response(obj: object, event_id: str, task_id: str) -> Verdict | None:
    """The verdict in one response document, or None when it says nothing of this approval's outcome (another
    event's answer, a Details press)."""
    if not isinstance(obj, dict):
        return None
    callback = obj.get("callback_data") if isinstance(obj.get("callback_data"), str) else ""
    action, _, ref = callback.partition("_")
    if obj.get("event_id") != event_id and obj.get("task_id") != task_id and ref != task_id:
        return None
    decision = obj.get("decision") if isinstance(obj.get("decision"), str) else ""
    decision = decision.strip().lower() or _ACTION_DECISIONS.get(action, "")
    if decision in _APPROVED:
        return Verdict(ALLOW, "approved", by=_who(obj), for_session="always" in (decision, action))
    if decision in _DENIED:
        return Verdict(DENY, "denied", by=_who(obj))
    if decision in _CLOSED:
        return Verdict(None, _CLOSED[decision])
    return None


def wait(
    config: Config,
    *,
    event_path: str,
    event_id: str,
    task_id: str,
    responses: files.NewFiles,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    """Wait until the owner answers the approval in `event_path`, it expires, the bridge proves absent, or
    `deadline` (a `clock()` time) passes. `responses` must have been made before the event file was written, so
    no answer can be missed. An approval the bridge never took is removed however this returns or raises, so
    that a bridge started later does not ask a question nobody waits for."""
    pickup_deadline = clock() + config.pickup
    refused_path = os.path.join(os.path.dirname(event_path), FAILED_DIR, os.path.basename(event_path))
    taken = False
    try:
        while True:
            for path in responses.poll():
                verdict = read_response(files.read_json(path, MAX_RESPONSE_BYTES), event_id, task_id)
                if verdict is not None:
                    return verdict
            now = clock()
            if not taken:
                taken = not files.exists(event_path)
                if taken and files.exists(refused_path):
                    return Verdict(None, "refused")
                if not taken and now >= pickup_deadline:
                    if files.withdraw(event_path):
                        return Verdict(None, "bridge_down")
                    taken = True  # the bridge took it in this very instant: it is running after all
            if now >= deadline:
                return Verdict(None, "timeout")
            sleep(max(0.0, min(config.poll_interval, deadline - now)))
    finally:
        if not taken:  # also when the hook is told to stop (SIGTERM): nobody will wait for this answer
            files.withdraw(event_path)


def _who(obj: dict[str, object]) -> str:
    username, first_name, user_id = obj.get("username"), obj.get("first_name"), obj.get("user_id")
    if isinstance(username, str) and username.strip():
        return "@" + username.strip().lstrip("@")
    if isinstance(first_name, str) and first_name.strip():
        return first_name.strip()
    if isinstance(user_id, int | str) and str(user_id).strip():
        return f"user {user_id}"
    return ""
