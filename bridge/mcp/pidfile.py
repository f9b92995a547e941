"""The bridge's pid file: which process the MCP tools started. Written atomically; a pid read from it is only a
claim, which bridge.mcp.bridge_process checks (alive, and running `run_bridge`) before acting on it."""

from __future__ import annotations

import os
from pathlib import Path


class PidFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> int | None:
        """The pid it names; None when there is no file. A file without a valid pid is removed."""
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return None
        try:
            pid = int(text.split()[0])
        except (ValueError, IndexError):
            pid = 0
        if pid <= 0:
            self.path.unlink(missing_ok=True)
            return None
        return pid

    def write(self, pid: int) -> None:
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(f"{pid}\n")
        os.replace(temp, self.path)

    def remove(self, pid: int) -> None:
        """Remove the file if it still names ``pid`` (a concurrent start may have replaced it)."""
        if self.read() == pid:
            self.path.unlink(missing_ok=True)
