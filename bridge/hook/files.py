"""The hook's file system: JSON written atomically, response files noticed as they arrive, bounded reads.

Every write goes to a temp name in the same folder ("." + name + ".tmp", which the bridge's watcher ignores) and
is renamed into place, so a reader never sees half a file. There is no fsync: it would add milliseconds to every
hook, and what it guards (an event lost if the machine loses power in the instant between the write and the
bridge storing it) is a notification, which the bridge makes durable as soon as it takes the file. Files are
created 0600: commands and diffs may hold secrets.
"""

from __future__ import annotations

import contextlib
import os
import time

from bridge.hook import jsonlite

TYPE_CHECKING = False  # see payload.py
if TYPE_CHECKING:
    from typing import Any

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
# A folder changed within this window may have changed again within the same timestamp tick (file systems
# stamp with a coarse clock), so its listing is read again rather than trusted to be unchanged.
_SETTLE_NS = 200_000_000


def unique_name(prefix: str) -> str:
    """A file name no other writer picks: time, pid and randomness (several hooks may run in the same ns)."""
    return f"{prefix}_{time.time_ns()}_{os.getpid()}_{os.urandom(3).hex()}.json"


def write_json(folder: str, name: str, obj: Any) -> str:
    """Write `obj` as `folder/name` atomically, creating `folder` if needed; the path written.

    Raises OSError (unwritable folder, disk full); the temp file is removed then.
    """
    text = jsonlite.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    data = text.encode("utf-8", "replace")  # a lone surrogate, which UTF-8 cannot hold, becomes "?"
    path = os.path.join(folder, name)
    temp = os.path.join(folder, f".{name}.tmp")
    try:
        fd = os.open(temp, _CREATE, 0o600)
    except FileNotFoundError:  # first run: the folder is made here rather than checked on every run
        os.makedirs(folder, exist_ok=True)
        fd = os.open(temp, _CREATE, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        _remove(temp)
        raise
    return path


def withdraw(path: str) -> bool:
    """Remove a file this hook wrote; False when it was already gone (taken by the bridge)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def exists(path: str) -> bool:
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    return True


def read_json(path: str, limit: int = 1024 * 1024) -> Any:
    """The JSON value in `path`, or None when it is missing, over `limit` bytes, or not JSON."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
        if len(raw) > limit:
            return None
        return jsonlite.loads(raw)
    except (OSError, ValueError, RecursionError):
        return None


def read_tail(path: str, size: int) -> bytes:
    """At most the last `size` bytes of `path` (b"" when it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            end = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, end - size))
            return handle.read(size)
    except OSError:
        return b""


class NewFiles:
    """The files named `prefix`*`suffix` that appear in `folder` after this object was made.

    `poll()` costs one stat() of the folder while nothing changes; the folder is listed only when its mtime moved
    (a rename into it moves it) or moved very recently. Files present at creation are never reported.
    """

    def __init__(self, folder: str, prefix: str, suffix: str = ".json") -> None:
        self.folder, self.prefix, self.suffix = folder, prefix, suffix
        # mtime before listing: a file arriving during the listing moves it, so the next poll lists again.
        self._mtime = self._folder_mtime()
        self._seen = set(self._names())

    def poll(self) -> list[str]:
        """Paths of matching files not reported before, in name order."""
        mtime = self._folder_mtime()
        if mtime is None or (mtime == self._mtime and time.time_ns() - mtime > _SETTLE_NS):
            return []
        self._mtime = mtime
        fresh = sorted(set(self._names()) - self._seen)
        self._seen.update(fresh)
        return [os.path.join(self.folder, name) for name in fresh]

    def _folder_mtime(self) -> int | None:
        try:
            return os.stat(self.folder).st_mtime_ns
        except OSError:
            return None

    def _names(self) -> list[str]:
        try:
            with os.scandir(self.folder) as entries:
                return [
                    e.name for e in entries if e.name.startswith(self.prefix) and e.name.endswith(self.suffix)
                ]
        except OSError:
            return []


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):  # runpy has imported contextlib already: it costs nothing here
        os.unlink(path)
