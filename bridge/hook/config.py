"""Where the hook writes, and how long it waits: read from the environment on each run, never at import.

The hook cannot use cctelegram.settings (that imports Django, ~150 ms the hook would pay on every tool call), so
the folder defaults are repeated here and must stay those of settings.py: CC_TELEGRAM_HOME (default
~/.cc_telegram), with events/ and responses/ under it unless CC_TELEGRAM_EVENTS_DIR / CC_TELEGRAM_RESPONSES_DIR
say otherwise. A bad number does not stop the hook (that would put a traceback in Claude Code's UI): it is
reported on stderr and the default is used.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # see payload.py
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_TIMEOUT = 300.0  # keep below the "timeout" of the PermissionRequest entry in .claude/settings.json
DEFAULT_PICKUP = 2.0
DEFAULT_GRANT = 3600.0
# Waiting costs one stat() per tick; 10 ms keeps a button press -> decision at ~5 ms on average.
POLL_INTERVAL = 0.01


class Config:
    """The hook's settings. Folders are absolute or as given; durations are seconds (floats)."""

    __slots__ = ("events_dir", "grant_seconds", "home", "pickup", "poll_interval", "responses_dir", "timeout")

    def __init__(
        self,
        *,
        home: str,
        events_dir: str,
        responses_dir: str,
        timeout: float = DEFAULT_TIMEOUT,
        pickup: float = DEFAULT_PICKUP,
        grant_seconds: float = DEFAULT_GRANT,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.home = home
        self.events_dir = events_dir
        self.responses_dir = responses_dir
        # How long a PermissionRequest waits for the owner's answer before Claude Code's own prompt takes over.
        self.timeout = timeout
        # How long an approval may lie unconsumed in the events folder before the bridge counts as not running.
        self.pickup = pickup
        # How long "Allow for this session" lasts.
        self.grant_seconds = grant_seconds
        self.poll_interval = poll_interval

    @property
    def grants_file(self) -> str:
        return os.path.join(self.home, "hook_grants.json")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Config:
        home = _path(environ, "CC_TELEGRAM_HOME") or os.path.join(os.path.expanduser("~"), ".cc_telegram")
        return cls(
            home=home,
            events_dir=_path(environ, "CC_TELEGRAM_EVENTS_DIR") or os.path.join(home, "events"),
            responses_dir=_path(environ, "CC_TELEGRAM_RESPONSES_DIR") or os.path.join(home, "responses"),
            timeout=_seconds(environ, "CC_TELEGRAM_HOOK_TIMEOUT", DEFAULT_TIMEOUT),
            pickup=_seconds(environ, "CC_TELEGRAM_HOOK_PICKUP_SECONDS", DEFAULT_PICKUP),
            grant_seconds=_seconds(environ, "CC_TELEGRAM_HOOK_GRANT_SECONDS", DEFAULT_GRANT),
        )


def _path(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    return os.path.expanduser(value) if value else ""


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 86_400:  # also refuses nan and inf
        sys.stderr.write(f"cctelegram hook: {name}={value!r} is not a number of seconds; using {default:g}\n")
        return default
    return seconds
