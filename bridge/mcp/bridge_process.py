"""The bridge process the MCP tools manage: `manage.py run_bridge`, started detached and tracked by a pid file.

The pid file ($CC_TELEGRAM_HOME/bridge.pid) names the bridge this tool started; its output goes to
$CC_TELEGRAM_HOME/bridge.log. A pid is acted on only while it is alive and its command line runs `run_bridge`:
a pid file left by a crash, or naming a pid the system has since given to another program, is removed and that
program left alone. Nothing is ever found or killed by name. Signals go through psutil, which refuses a pid
reused since it was looked at.

Other bridges (`manage.py up`, a `run_bridge` started by hand) are seen through their heartbeats: start and ensure
leave them be and do not start a second one; stop only ever stops the one in the pid file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from bridge.mcp.pidfile import PidFile

logger = logging.getLogger(__name__)

PID_FILE, LOG_FILE = "bridge.pid", "bridge.log"
COMMAND = "run_bridge"
# A log past this size is moved to bridge.log.1 when a bridge starts: bounded disk, the last run kept.
LOG_ROTATE_BYTES = 10 * 1024 * 1024
POLL_SECONDS = 0.05
# The bridges this process started, until they exit: polling one collects it, so it never lingers as a zombie.
_CHILDREN: dict[int, subprocess.Popen] = {}


class BridgeProcess:
    """Start, stop and check the bridge. Configuration is read at each use, from the settings:
    CC_TELEGRAM_HOME, MCP_BRIDGE_ARGS (added to `run_bridge`; tests use --no-send),
    MCP_BRIDGE_STOP_GRACE_SECONDS (SIGTERM to SIGKILL, default 15) and MCP_BRIDGE_READY_TIMEOUT_SECONDS (how long
    start waits for the first heartbeat, default 30)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    @property
    def pids(self) -> PidFile:
        return PidFile(Path(settings.CC_TELEGRAM_HOME) / PID_FILE)

    @property
    def log_file(self) -> Path:
        return Path(settings.CC_TELEGRAM_HOME) / LOG_FILE

    # --- the tools ---------------------------------------------------------------------------------------------
    async def check(self) -> dict[str, Any]:
        process = self.find()
        others = await _other_workers(process.pid if process else None)
        if process is None:
            return {
                "running": False,
                "pid": None,
                "message": "Bridge process is not running",
                "other_bridges": others,
            }
        message = f"Bridge process is running (pid {process.pid})"
        return {"running": True, "pid": process.pid, "message": message, "other_bridges": others}

    async def start(self) -> dict[str, Any]:
        async with self._lock:
            return await self._start()

    async def stop(self) -> dict[str, Any]:
        async with self._lock:
            return await self._stop()

    async def restart(self) -> dict[str, Any]:
        async with self._lock:
            stopped = await self._stop()
            if not stopped["success"]:
                return {
                    "success": False,
                    "message": f"Failed to stop bridge during restart: {stopped['message']}",
                }
            started = await self._start(alone=True)
        outcome = "successful" if started["success"] else "failed"
        return {
            "success": started["success"],
            "message": f"Restart {outcome}: {started['message']}",
            "pid": started.get("pid"),
        }

    async def ensure(self) -> dict[str, Any]:
        async with self._lock:
            started = await self._start()
        if not started["success"]:
            action = "failed"
        elif started.get("already_running"):
            action = "already_running"
        else:
            action = "started"
        return {
            "success": started["success"],
            "message": started["message"],
            "action": action,
            "pid": started.get("pid"),
        }

    # --- steps ---------------------------------------------------------------------------------------------------
    def find(self) -> psutil.Process | None:
        """The bridge the pid file names, if it is alive and runs `run_bridge`; else None (a stale file removed)."""
        pid = self.pids.read()
        if pid is None:
            return None
        self._reap(pid)
        process = _bridge_process(pid)
        if process is None:
            self.pids.remove(pid)
            logger.info("removed a stale %s: pid %s is not a running bridge", PID_FILE, pid)
        return process

    async def _start(self, *, alone: bool = False) -> dict[str, Any]:
        process = self.find()
        if process is not None:
            return _already(f"Bridge is already running (pid {process.pid})", process.pid)
        if not alone and (others := await _other_workers(None)):
            return _already(
                f"A bridge is already running ({others} worker(s) reporting, not started here)", None
            )
        child = self._spawn()
        return await self._wait_ready(child)

    def _spawn(self) -> subprocess.Popen:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._rotate_log()
        extra = getattr(settings, "MCP_BRIDGE_ARGS", ())
        command = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), COMMAND, *extra]
        with open(self.log_file, "ab") as log:
            log.write(f"--- {timezone.now().isoformat()} starting: {' '.join(command)}\n".encode())
            log.flush()
            child = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=_child_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # detached: it outlives this server and ignores the agent's Ctrl-C
                close_fds=True,
            )
        _CHILDREN[child.pid] = child
        self.pids.write(child.pid)
        logger.info("started the bridge, pid %s, log %s", child.pid, self.log_file)
        return child

    async def _wait_ready(self, child: subprocess.Popen) -> dict[str, Any]:
        """Until its first heartbeat (ready), its exit (failed) or the ready timeout (running, not reporting)."""
        loop = asyncio.get_running_loop()
        timeout = float(getattr(settings, "MCP_BRIDGE_READY_TIMEOUT_SECONDS", 30))
        deadline = loop.time() + timeout
        reported = sync_to_async(_has_reported)
        while loop.time() < deadline:
            code = child.poll()
            if code is not None:
                _CHILDREN.pop(child.pid, None)
                self.pids.remove(child.pid)
                return {
                    "success": False,
                    "message": f"Bridge exited at start (exit code {code}); {self.log_file} ends with: "
                    f"{self._log_tail()}",
                }
            if await reported(child.pid):
                return {
                    "success": True,
                    "message": f"Bridge started successfully (pid {child.pid})",
                    "pid": child.pid,
                }
            await asyncio.sleep(POLL_SECONDS * 2)
        return {
            "success": True,
            "message": f"Bridge started (pid {child.pid}) but has not reported in after {timeout:g} s; "
            f"see {self.log_file}",
            "pid": child.pid,
        }

    async def _stop(self) -> dict[str, Any]:
        process = self.find()
        if process is None:
            return {"success": True, "message": "Bridge is not running"}
        pid, grace = process.pid, float(getattr(settings, "MCP_BRIDGE_STOP_GRACE_SECONDS", 15))
        try:
            process.terminate()
            if not await self._wait_gone(process, grace):
                logger.warning("bridge pid %s ignored SIGTERM for %g s: killing it", pid, grace)
                process.kill()
                if not await self._wait_gone(process, 5.0):
                    return {"success": False, "message": f"Bridge (pid {pid}) survived SIGKILL"}
                message = f"Bridge (pid {pid}) did not stop within {grace:g} s and was killed"
            else:
                message = f"Bridge stopped (pid {pid})"
        except psutil.NoSuchProcess:
            message = f"Bridge stopped (pid {pid})"
        except psutil.AccessDenied as exc:
            return {"success": False, "message": f"Not allowed to signal the bridge (pid {pid}): {exc}"}
        self.pids.remove(pid)
        logger.info("%s", message)
        return {"success": True, "message": message}

    async def _wait_gone(self, process: psutil.Process, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._reap(process.pid)
            if not _alive(process):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)

    # --- files and children ----------------------------------------------------------------------------------
    @staticmethod
    def _reap(pid: int) -> None:
        child = _CHILDREN.get(pid)
        if child is not None and child.poll() is not None:
            del _CHILDREN[pid]

    def _rotate_log(self) -> None:
        try:
            if self.log_file.stat().st_size > LOG_ROTATE_BYTES:
                os.replace(self.log_file, self.log_file.with_name(LOG_FILE + ".1"))
        except FileNotFoundError:
            pass

    def _log_tail(self, lines: int = 5) -> str:
        try:
            with open(self.log_file, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))
                tail = log.read().decode("utf-8", "replace").strip().splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return " | ".join(tail) or "(empty log)"


def _bridge_process(pid: int) -> psutil.Process | None:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or COMMAND not in process.cmdline():
            return None
        return process
    except psutil.Error:
        return None


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _already(message: str, pid: int | None) -> dict[str, Any]:
    return {"success": True, "message": message, "pid": pid, "already_running": True}


def _child_environment() -> dict[str, str]:
    """This process's environment, with the folders as this server sees them and the full Django settings."""
    env = dict(os.environ)
    env["CC_TELEGRAM_HOME"] = str(settings.CC_TELEGRAM_HOME)
    env["CC_TELEGRAM_EVENTS_DIR"] = str(settings.CC_TELEGRAM_EVENTS_DIR)
    env["CC_TELEGRAM_RESPONSES_DIR"] = str(settings.CC_TELEGRAM_RESPONSES_DIR)
    full = getattr(settings, "FULL_SETTINGS_MODULE", None)
    if full:
        env["DJANGO_SETTINGS_MODULE"] = full
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _has_reported(pid: int) -> bool:
    from bridge.models import Worker

    return Worker.objects.filter(pid=pid, hostname=socket.gethostname()).exists()


async def _other_workers(managed_pid: int | None) -> int:
    """Live bridge workers other than ``managed_pid``: `up`, or bridges started elsewhere."""

    def count() -> int:
        from bridge.health import WORKER_STALE
        from bridge.models import Worker

        alive = Worker.objects.filter(heartbeat_at__gte=timezone.now() - WORKER_STALE)
        if managed_pid is not None:
            alive = alive.exclude(pid=managed_pid, hostname=socket.gethostname())
        return alive.count()

    return await sync_to_async(count)()
