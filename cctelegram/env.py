"""Typed readers for environment variables.

Every reader raises ImproperlyConfigured naming the variable and the bad value, so a typo in a deployment fails
at start-up with a message an operator can act on, never later with a confusing traceback.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def _bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: expected {expected}")


def env_str(name: str, default: str = "", *, choices: tuple[str, ...] | None = None) -> str:
    value = _raw(name)
    if value is None or value == "":
        return default
    if choices is not None and value.lower() not in choices:
        raise _bad(name, value, "one of " + ", ".join(choices))
    return value.lower() if choices is not None else value


def env_secret(name: str, *fallbacks: str) -> str:
    """A secret: returned as is, never echoed in an error message."""
    for candidate in (name, *fallbacks):
        value = _raw(candidate)
        if value:
            if any(ch.isspace() for ch in value):
                raise ImproperlyConfigured(f"{candidate} contains whitespace; check how it was quoted")
            return value
    return ""


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _bad(name, value, "a boolean (1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, "an integer") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _bad(name, value, f"an integer between {minimum} and {maximum}")
    return number


def env_list(name: str) -> list[str]:
    value = _raw(name)
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def env_int_list(name: str) -> list[int]:
    items = env_list(name)
    try:
        return [int(item) for item in items]
    except ValueError:
        raise _bad(name, _raw(name) or "", "comma-separated integer Telegram ids") from None


def env_path(name: str, default: Path) -> Path:
    value = _raw(name)
    if not value:
        return default
    return Path(value).expanduser()


def env_timezone(name: str, default: str = "UTC") -> str:
    value = _raw(name) or default
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad(name, value, "an IANA time zone such as Europe/Berlin") from None
    return value


def env_url(name: str, *fallbacks: str, schemes: tuple[str, ...]) -> str:
    for candidate in (name, *fallbacks):
        value = _raw(candidate)
        if value:
            scheme = value.split("://", 1)[0].lower() if "://" in value else ""
            if scheme not in schemes:
                raise ImproperlyConfigured(
                    f"{candidate} must be a URL starting with one of: {', '.join(s + '://' for s in schemes)}"
                )
            return value
    return ""


def installation_secret(path: Path, make: Callable[[], str]) -> str:
    """A secret that belongs to this installation: read from `path`, created there (mode 0600) on first use.

    Every process of one installation (web, workers, MCP servers) reads the same file, so they agree without any
    variable to set; two processes starting at once cannot create two different values (O_EXCL decides).
    """
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    value = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    except OSError as exc:
        raise ImproperlyConfigured(f"{path} cannot be created: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as file:
        file.write(value + "\n")
    return value


def _read_secret(path: Path) -> str:
    for _ in range(50):
        value = path.read_text().strip()
        if value:
            return value
        # Another process created the file an instant ago and is still writing it.
        time.sleep(0.01)
    raise ImproperlyConfigured(f"{path} is empty: delete it and a new one is made")
