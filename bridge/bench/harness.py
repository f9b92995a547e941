"""What the scenarios share: the feeder process, the emulator, the database, bridge processes, RSS sampling.

Everything here runs inside the bench's world (bridge/bench/world.py): the database is the bench's own, so
``reset_world`` may empty it.
"""

from __future__ import annotations

import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import psutil
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections

from bridge.bench.feeder import marker
from bridge.bench.world import REDIS_ENV, delete_keys

PROJECT_ROOT = Path(settings.BASE_DIR)
MANAGE = PROJECT_ROOT / "manage.py"


# --- database and settings ------------------------------------------------------------------------------------
def reset_world() -> None:
    """Empty every table of the bench's own database and delete the run's Redis keys (queues, rate buckets, cache):
    each scenario starts from a fresh installation, not from what the one before left queued."""
    call_command("flush", interactive=False, verbosity=0)
    url = os.environ.get(REDIS_ENV)
    if url:
        delete_keys(url, settings.CC_TELEGRAM_REDIS_PREFIX)


@contextmanager
def database_copy(alias: str, folder: Path) -> Iterator[str]:
    """A copy of the bench's database as it is now, for one child process of its own; yields its DATABASE_URL.

    Processes measured side by side must not share a database: each would wait on the other's writes (SQLite has
    one writer), and the comparison would measure that contention. The copy is registered in this process under
    ``alias`` (``Event.objects.using(alias)``) and deleted at the end. SQLite: a file in ``folder``, copied with
    SQLite's backup API; PostgreSQL: a database created from the bench's own as a template.
    """
    default = connections.databases["default"]
    if connection.vendor == "sqlite":
        path = folder / f"{alias}.sqlite3"
        connection.ensure_connection()
        target = sqlite3.connect(path)
        try:
            connection.connection.backup(target)
        finally:
            target.close()
        name, url = path, f"sqlite://{quote(str(path))}"
    elif connection.vendor == "postgresql":
        source = default["NAME"]
        name = f"{source}_{alias}"[:63]
        with connection.cursor() as cursor:
            # A template must have no other session: only this connection is open while no child runs.
            cursor.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        url = urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}"))
    else:
        raise RuntimeError(f"database_copy supports SQLite and PostgreSQL, not {connection.vendor}")
    connections.databases[alias] = {**default, "NAME": name}
    try:
        yield url
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.databases[alias]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{name}{suffix}").unlink(missing_ok=True)


def tune(**changes: Any) -> None:
    """Change BridgeSettings the way an operator does (validated, audited, version bumped)."""
    from bridge.models import bump_settings

    bump_settings("bench", **changes)


def make_recipients(count: int, *, by_source: bool) -> list[int]:
    """``count`` active approvers; with ``by_source`` recipient i receives only project-i's events (the feeder
    spreads events over ``count`` projects), else every recipient receives every event. Returns their chat ids."""
    from bridge.models import Recipient

    chat_ids = [500_000 + i for i in range(count)]
    Recipient.objects.bulk_create(
        [
            Recipient(chat_id=chat_id, display_name=f"bench {i}", sources=f"project-{i}" if by_source else "")
            for i, chat_id in enumerate(chat_ids)
        ]
    )
    return chat_ids


LIMITS_OFF = {
    # The highest rates BridgeSettings accepts, and no digests: every event is its own message.
    "rate_global_per_second": 1000,
    "rate_per_chat_per_second": 100,
    "rate_per_group_per_minute": 1000,
    "digest_threshold": 10_000,
}


# --- the Telegram emulator ------------------------------------------------------------------------------------
class Emulator:
    """The Bot API emulator in its own process (it must not share the GIL with the bridge it times), with the
    control API at hand."""

    def __init__(self) -> None:
        from bridge.telegram.emulator import EmulatorProcess

        self.process = EmulatorProcess().start()
        self.base_url = self.process.base_url
        self.client = httpx.Client(base_url=self.process.control_url, timeout=30)

    def close(self) -> None:
        self.client.close()
        self.process.stop()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def point_bridge_here(self) -> None:
        """Make build_sender (and this process's settings) talk to this emulator."""
        from bridge.telegram.emulator import TEST_TOKEN

        settings.TELEGRAM_BOT_TOKEN = TEST_TOKEN
        settings.TELEGRAM_API_BASE_URL = self.base_url

    def env(self) -> dict[str, str]:
        """Environment variables that point a bridge process here."""
        from bridge.telegram.emulator import TEST_TOKEN

        return {"TELEGRAM_BOT_TOKEN": TEST_TOKEN, "TELEGRAM_API_BASE_URL": self.base_url}

    def _json(self, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
        response = self.client.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def limits(self, **config: Any) -> None:
        self._json("POST", "/limits", config)

    def reset(self) -> None:
        self._json("POST", "/reset")

    def stats(self) -> dict[str, Any]:
        return self._json("GET", "/stats")

    def sends(self, since: int = 0) -> list[dict[str, Any]]:
        """sendMessage calls after call number ``since``: seq, time (wall clock), chat_id, text, ok."""
        calls = self._json("GET", f"/calls?method=sendMessage&since={since}")["calls"]
        return [
            {
                "seq": c["seq"],
                "time": c["time"],
                "ok": c["ok"],
                "chat_id": c["params"].get("chat_id"),
                "text": c["params"].get("text", ""),
            }
            for c in calls
        ]

    def last_seq(self) -> int:
        return self.stats()["calls_total"]

    def wait_for_sends(
        self, count: int, *, since: int = 0, timeout: float, progress=None, what: str = "sent"
    ) -> list[dict[str, Any]]:
        """Collect sendMessage calls after ``since`` until ``count`` succeeded or ``timeout`` passed.

        Reads the call log in pieces as it grows: it keeps only the most recent 10,000 calls."""
        deadline = time.monotonic() + timeout
        found: list[dict[str, Any]] = []
        seen = since
        while True:
            batch = self.sends(seen)
            if batch:
                seen = batch[-1]["seq"]
                found += [c for c in batch if c["ok"]]
            if progress is not None:
                progress.percent(len(found), count, what)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


def latencies_by_marker(
    sends: list[dict[str, Any]], tag: str, renamed: list[float]
) -> tuple[list[float], dict[int, float]]:
    """Milliseconds from each event's rename to the first message that carries its marker; and, per event index,
    the time that message arrived."""
    pattern = re.compile(rf"{re.escape(marker(tag, 0)[:-6])}(\d{{6}})")
    arrived: dict[int, float] = {}
    for call in sends:
        for match in pattern.finditer(call["text"]):
            index = int(match.group(1))
            if index < len(renamed) and index not in arrived:
                arrived[index] = call["time"]
    return [(t - renamed[i]) * 1000 for i, t in sorted(arrived.items())], arrived


# --- processes ---------------------------------------------------------------------------------------------------
def world_env(**overrides: str) -> dict[str, str]:
    """This process's environment (the bench's world) with ``overrides``."""
    env = dict(os.environ)
    env.update(overrides)
    return env


@contextmanager
def bridge_process(
    *,
    events_dir: Path,
    send: bool,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    wait: bool = True,
) -> Iterator[subprocess.Popen]:
    """``manage.py run_bridge`` in a child process watching ``events_dir``, stopped with SIGTERM (a drain).

    Yields once the bridge says it is running; with ``wait=False`` at once, and the caller calls
    ``wait_running`` (to start several bridges at the same time). Its stderr (logs, system-check warnings about the
    bench's deliberately odd set-up) goes to bridge.log beside the events folder, not to the bench's terminal."""
    command = [sys.executable, str(MANAGE), "run_bridge"] + ([] if send else ["--no-send"])
    full_env = world_env(CC_TELEGRAM_EVENTS_DIR=str(events_dir), **(env or {}))
    log = open(events_dir.parent / "bridge.log", "ab")  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        command,
        env=full_env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        if wait:
            wait_running(process, timeout)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()
        log.close()


def wait_running(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait for the line a bridge process started by ``bridge_process`` prints once running; RuntimeError when
    it does not come within ``timeout`` seconds."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if "running" not in line:
        raise RuntimeError(f"the bridge process did not start: {line.strip() or 'no output'}")


class RssSampler:
    """Samples a process's resident memory (MB) every ``interval`` seconds on a thread."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (monotonic seconds, MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self.process.memory_info().rss / 1_048_576))
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def now(self) -> float:
        return self.process.memory_info().rss / 1_048_576


def redis_queue(url: str, name: str):
    """A Redis Streams queue under the run's key prefix (deleted at the end of the run)."""
    from bridge.queue.redis_streams import RedisStreamsQueue

    return RedisStreamsQueue.from_url(url, prefix=f"{settings.CC_TELEGRAM_REDIS_PREFIX}:{name}")
