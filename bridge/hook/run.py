"""One Claude Code hook run: hook JSON on stdin in, an event file out, and for PermissionRequest a verdict.

The contract with Claude Code: the exit status is always 0 and stdout stays empty, except for a PermissionRequest
decided on Telegram, which prints Claude Code's decision JSON. Anything that goes wrong (bad input, a folder that
cannot be written) is one line on stderr, never a traceback in Claude Code's UI, and Claude Code carries on as
if the hook were not installed. The hook never outlives its timeout: besides its own deadline, an interval timer
ends the process one second after it, whatever it is blocked on.

Only the stdlib is imported, and the waiting machinery only for PermissionRequest, so that Stop and Notification
write their event within a few milliseconds of Python starting.
"""

from __future__ import annotations

import os
import sys
import time

from bridge.hook import describe, files
from bridge.hook.config import Config
from bridge.hook.payload import BadHookInput, HookInput


def main() -> int:
    """Run the hook once on this process's stdin and stdout; the exit status (always 0)."""
    started = time.time()
    try:
        config = Config.from_env()
        _install_exits(config.timeout + 1.0)
        hook = HookInput.parse(sys.stdin.buffer.read())
        handler = _HANDLERS.get(hook.event)
        if handler is None:
            _log(f"{hook.event} is not a hook event CCTelegram handles; ignored")
            return 0
        output = handler(hook, config, started)
        if output:
            sys.stdout.write(output + "\n")
            sys.stdout.flush()
    except BadHookInput as exc:
        _log(str(exc))
    except OSError as exc:
        _log(f"cannot write to the CCTelegram folders: {exc}")
    except Exception as exc:  # Claude Code would show a traceback to the user: one line is all it may get
        _log(f"unexpected {type(exc).__name__}: {exc}")
    return 0


def report_stop(hook: HookInput, config: Config, started: float) -> str:
    """Stop / SubagentStop: a task_completion event."""
    files.write_json(
        config.events_dir, files.unique_name("cc_hook_stop"), describe.completion_event(hook, started)
    )
    return ""


def report_notification(hook: HookInput, config: Config, started: float) -> str:
    """Notification: an info_notification event."""
    event = describe.notification_event(hook, started)
    files.write_json(config.events_dir, files.unique_name("cc_hook_notification"), event)
    return ""


def ask_permission(hook: HookInput, config: Config, started: float) -> str:
    """PermissionRequest: answer at once from a session grant, else send an approval_request and wait for it."""
    # Imported here: only this event waits, and Stop and Notification should not pay for it.
    from bridge.hook import decision, grants

    now = time.time()
    if grants.is_granted(config.grants_file, hook.session_id, hook.tool_name, now):
        return decision.Verdict(decision.ALLOW, "granted").output()
    # Made before the event is written, so that no answer can arrive unseen.
    responses = files.NewFiles(config.responses_dir, decision.RESPONSE_PREFIX)
    event_id, task_id = f"hook-{os.urandom(12).hex()}", f"perm-{os.urandom(6).hex()}"
    expires_at = started + config.timeout
    event = describe.approval_event(hook, event_id=event_id, task_id=task_id, expires_at=expires_at, now=now)
    path = files.write_json(config.events_dir, files.unique_name("cc_hook_permission"), event)
    verdict = decision.wait(
        config,
        event_path=path,
        event_id=event_id,
        task_id=task_id,
        responses=responses,
        deadline=time.monotonic() + (expires_at - time.time()),
    )
    if verdict.for_session:
        try:
            grants.grant(
                config.grants_file, hook.session_id, hook.tool_name, time.time() + config.grant_seconds, now
            )
        except OSError as exc:  # the answer still stands; only the next request will ask again
            _log(f"could not remember the session grant: {exc}")
    if verdict.behavior is None:
        _log(_FALL_BACK.get(verdict.reason, "no decision") + "; Claude Code asks here")
    return verdict.output()


_HANDLERS = {
    "Stop": report_stop,
    "SubagentStop": report_stop,
    "Notification": report_notification,
    "PermissionRequest": ask_permission,
}
_FALL_BACK = {
    "bridge_down": "the CCTelegram bridge is not running (the approval was not taken)",
    "timeout": "no answer from Telegram in time",
    "expired": "the approval expired on Telegram",
    "answered": "another option was chosen on Telegram",
    "refused": "the bridge refused the approval (see events/failed/)",
}


def _install_exits(ceiling: float) -> None:
    """Exit status 0 and no traceback, whatever ends the hook: SIGTERM and SIGINT (Claude Code cancelling it) exit
    through the normal unwinding, so a pending approval is taken back; and after `ceiling` seconds the process
    ends at once, whatever it is blocked on (a last resort against hanging Claude Code)."""
    # _signal, not signal: the public module builds enums at import (~3 ms) for names the hook does not need.
    import _signal

    _signal.signal(_signal.SIGTERM, _exit_quietly)
    _signal.signal(_signal.SIGINT, _exit_quietly)
    if hasattr(_signal, "setitimer"):  # POSIX; elsewhere the hook relies on its own deadline
        _signal.signal(_signal.SIGALRM, lambda signum, frame: os._exit(0))
        _signal.setitimer(_signal.ITIMER_REAL, ceiling)


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _log(message: str) -> None:
    try:
        sys.stderr.write(f"cctelegram hook: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
