"""Run the emulator in a child process, for benchmarks.

In a thread (EmulatorServer) the emulator shares the GIL with the code under test, so its CPU time counts
against the bridge's throughput; in its own process it does not. There is no in-process ``state`` here:
inspect through the control API at ``control_url``.

    with EmulatorProcess() as emulator:
        bot = Bot(token, base_url=emulator.base_url)
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, cast

from .server import STARTUP_TIMEOUT, EmulatorUrls

_PROJECT_ROOT = Path(__file__).resolve().parents[3]


class EmulatorProcess(EmulatorUrls):
    """``python -m bridge.telegram.emulator`` on a free port; ``args`` are extra command-line options."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, args: tuple[str, ...] = ()) -> None:
        self.host = host
        self.port = port
        self.args = args
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> EmulatorProcess:
        """Start the child and wait until it listens; raises RuntimeError if it does not."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
        command = [
            sys.executable,
            "-m",
            "bridge.telegram.emulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        self._process = subprocess.Popen(
            [*command, "--announce", "--log-level", "warning", *self.args],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=_PROJECT_ROOT,
        )
        stdout = cast(IO[str], self._process.stdout)
        ready, _, _ = select.select([stdout], [], [], STARTUP_TIMEOUT)
        line = stdout.readline() if ready else ""
        if not line:
            self.stop()
            raise RuntimeError("the Telegram emulator process did not start")
        self.port = int(json.loads(line)["port"])
        # The port is announced once bound; wait until it also accepts, so the first request never races the server.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.stop()
                    raise RuntimeError("the Telegram emulator process did not start listening") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after 10 s)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
