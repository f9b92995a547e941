"""Real bridge processes for the reliability tests, and the outages they must ride out.

``BridgeProcesses`` spawns ``manage.py run_bridge`` children on the test database (the one pytest-django made,
handed over as DATABASE_URL), a Redis, and the emulator; each child logs to its own file. ``PrivateRedis`` is a
redis-server of the test's own, which it may restart (never the shared one). ``DatabaseOutage`` makes the test
database unavailable for a while: on PostgreSQL a TCP proxy that drops every connection and refuses new ones, on
SQLite a writer holding the exclusive lock.

Nothing here is a fixture: each test module builds the world it needs from these pieces.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

from tests.emulator_fixtures import TEST_TOKEN

PROJECT = Path(__file__).resolve().parent.parent
READY_LINE = "running; watching"
START_TIMEOUT = 90.0
"""Seconds a child may take to come up: Django, python-telegram-bot and Redis clients load in ~2 s on an idle
machine, many times that on a shared CI runner."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, every: float = 0.05):
    """Poll ``condition`` until it returns something truthy (returned); AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# --- the test database, for a child ------------------------------------------------------------------------------


def child_database_url(
    *, host: str | None = None, port: int | None = None, sqlite_timeout: float = 20
) -> str:
    """The database pytest-django made for this run, as a DATABASE_URL a child process can use.

    ``host``/``port`` redirect a PostgreSQL connection (through a proxy); ``sqlite_timeout`` is how long an
    SQLite writer waits for the lock before "database is locked".
    """
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        name = str(db["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise RuntimeError("child processes need the test database in a file, not in memory")
        return f"sqlite://{Path(name).resolve()}?timeout={sqlite_timeout}"
    if db["ENGINE"].endswith("postgresql"):
        user = quote(db.get("USER") or "", safe="")
        password = quote(db.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        where = f"{host or db.get('HOST') or '127.0.0.1'}:{port or db.get('PORT') or 5432}"
        return f"postgres://{auth}{where}/{quote(db['NAME'], safe='')}"
    raise RuntimeError(f"no DATABASE_URL form for {db['ENGINE']}")


def is_postgresql() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


# --- bridge workers ------------------------------------------------------------------------------------------------


class BridgeProcess:
    """One ``manage.py run_bridge`` child; its stdout and stderr go to ``log_path``."""

    def __init__(self, index: int, env: dict[str, str], log_path: Path) -> None:
        self.index = index
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> BridgeProcess:
        self.started_at = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "run_bridge"],
                cwd=PROJECT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def consumer(self) -> str:
        """Its name as a queue consumer (bridge.pipeline.worker_name)."""
        return f"{socket.gethostname()}:{self.pid}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        """Whether it announced that it runs; raises if it died first."""
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"worker {self.index} exited with {self.process.returncode}:\n{self.log_tail()}"
            )
        return f"bridge {self.consumer} {READY_LINE}" in self.log()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        wait_for(self.ready, timeout=timeout, what=f"worker {self.index} to start", every=0.05)

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def terminate(self, timeout: float = 30.0) -> bool:
        """SIGTERM and wait for the drain; False when it had to be killed after ``timeout`` seconds."""
        if not self.alive():
            return True
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return False
        return True

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


class BridgeProcesses:
    """``run_bridge`` children sharing one events folder, one database, one Redis and the emulator."""

    def __init__(
        self,
        base: Path,
        *,
        emulator,
        redis_url: str,
        key_prefix: str,
        database_url: str | None = None,
        visibility_timeout: int = 3,
        token: str = TEST_TOKEN,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.base = base
        self.home = base / "home"
        self.events_dir = base / "events"
        self.responses_dir = base / "responses"
        self.logs_dir = base / "logs"
        for folder in (self.home, self.events_dir, self.responses_dir, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.emulator = emulator
        self.redis_url = redis_url
        self.env = self._env(
            redis_url=redis_url,
            key_prefix=key_prefix,
            database_url=database_url or child_database_url(),
            visibility_timeout=visibility_timeout,
            token=token,
            extra=extra_env or {},
        )
        self.workers: list[BridgeProcess] = []

    def _env(
        self, *, redis_url, key_prefix, database_url, visibility_timeout, token, extra
    ) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("CC_TELEGRAM_", "TELEGRAM_", "DJANGO_", "PYTEST_"))
            and name not in ("REDIS_URL", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")
        }
        env.update(
            PYTHONUNBUFFERED="1",
            DJANGO_SECRET_KEY="reliability-tests-" + "x" * 40,
            CC_TELEGRAM_HOME=str(self.home),
            CC_TELEGRAM_EVENTS_DIR=str(self.events_dir),
            CC_TELEGRAM_RESPONSES_DIR=str(self.responses_dir),
            TELEGRAM_BOT_TOKEN=token,
            TELEGRAM_API_BASE_URL=self.emulator.base_url,
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            CC_TELEGRAM_REDIS_PREFIX=key_prefix,
            CC_TELEGRAM_VISIBILITY_TIMEOUT=str(visibility_timeout),
            CC_TELEGRAM_LOG_LEVEL="INFO",
        )
        env.update(extra)
        return env

    def spawn(self, count: int = 1, *, wait: bool = True) -> list[BridgeProcess]:
        started = []
        for _ in range(count):
            index = len(self.workers)
            worker = BridgeProcess(index, self.env, self.logs_dir / f"worker-{index}.log").start()
            self.workers.append(worker)
            started.append(worker)
        if wait:
            for worker in started:
                worker.wait_ready()
        return started

    def alive(self) -> list[BridgeProcess]:
        return [w for w in self.workers if w.alive()]

    def stop_all(self, timeout: float = 30.0) -> list[BridgeProcess]:
        """SIGTERM every live worker at once and wait; returns those that did not drain in time (killed)."""
        live = self.alive()
        for worker in live:
            worker.process.send_signal(signal.SIGTERM)
        stuck = []
        deadline = time.monotonic() + timeout
        for worker in live:
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                stuck.append(worker)
        return stuck

    def kill_all(self) -> None:
        for worker in self.workers:
            worker.kill()

    def logs(self) -> str:
        return "\n".join(f"--- worker {w.index} (pid {w.pid}) ---\n{w.log()}" for w in self.workers)

    # --- events -------------------------------------------------------------------------------------------------
    def drop(self, name: str, body: dict | bytes) -> Path:
        """Write an event file the way an agent should: a temp name, then a rename."""
        return drop_event(self.events_dir, name, body)

    def waiting_files(self) -> list[str]:
        return sorted(p.name for p in self.events_dir.iterdir() if p.name.endswith(".json"))


def drop_event(folder: Path, name: str, body: dict | bytes) -> Path:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    temp = folder / f".{name}.tmp"
    temp.write_bytes(content)
    target = folder / name
    os.replace(temp, target)
    return target


def titles_received(emulator, pattern: re.Pattern[str]) -> Counter[str]:
    """How many times the emulator received a message naming each title matching ``pattern``."""
    seen: Counter[str] = Counter()
    for record in emulator.state.sent_messages():
        seen.update(set(pattern.findall(record["message"].get("text", ""))))
    return seen


def send_calls(emulator) -> list[dict]:
    return emulator.state.call_log("sendMessage")


# --- a private Redis -----------------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of the test's own, with an append-only file so that a restart keeps the streams (as a
    production Redis is configured); ``restart`` stops it gracefully and starts it again on the same port."""

    def __init__(self, folder: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.args = [
            server,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--dir",
            str(folder),
            "--logfile",
            str(folder / "redis.log"),
        ]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, timeout=20, what="the private redis-server to start", every=0.01)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """A graceful shutdown (SIGTERM): Redis writes its append-only file out first."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


# --- database outages ----------------------------------------------------------------------------------------------


class TcpProxy:
    """A TCP relay in front of PostgreSQL that can fail like a database restart: ``outage`` closes every relayed
    connection and refuses new ones until it ends."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, name="db-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()  # the server is "restarting": connection refused, as far as a client can tell
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                self._drop(s)

    def _drop(self, s: socket.socket) -> None:
        with self._lock:
            self._open.discard(s)
        with suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            s.close()

    def cut(self) -> None:
        """Drop every relayed connection and refuse new ones until ``restore``."""
        self.down.set()
        with self._lock:
            live = list(self._open)
        for s in live:
            self._drop(s)

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self._closed = True
        self.cut()
        with suppress(OSError):
            self.listener.close()


class DatabaseOutage:
    """Makes the test database unavailable to child processes for a while, whatever the engine.

    PostgreSQL: children connect through a ``TcpProxy`` (``database_url``); an outage drops their connections and
    refuses new ones, as a server restart does. SQLite: children wait at most ``sqlite_timeout`` seconds for the
    write lock, and an outage holds ``BEGIN EXCLUSIVE`` from another connection, so their writes fail with
    "database is locked".
    """

    def __init__(self, *, sqlite_timeout: float = 1.0) -> None:
        self.postgresql = is_postgresql()
        self.proxy: TcpProxy | None = None
        if self.postgresql:
            db = settings.DATABASES["default"]
            self.proxy = TcpProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))
            self.database_url = child_database_url(host="127.0.0.1", port=self.proxy.port)
        else:
            self.database_url = child_database_url(sqlite_timeout=sqlite_timeout)
            self.sqlite_path = str(settings.DATABASES["default"]["NAME"])
        self.log_marker = "connection" if self.postgresql else "database is locked"

    def hold(self, seconds: float) -> None:
        """The database is away for ``seconds`` (blocks the calling thread meanwhile)."""
        if self.proxy is not None:
            self.proxy.cut()
            time.sleep(seconds)
            self.proxy.restore()
            return
        lock = sqlite3.connect(self.sqlite_path, timeout=30, isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            time.sleep(seconds)
            lock.execute("ROLLBACK")
        finally:
            lock.close()

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()


def lines_matching(text: str, words: Iterable[str]) -> list[str]:
    wanted = tuple(words)
    return [line for line in text.splitlines() if any(word in line for word in wanted)]


# --- what each worker did -------------------------------------------------------------------------------------------


def counter_by_pid(metrics_dir: Path, name: str, **labels: str) -> dict[int, float]:
    """A counter's value in each worker process, read from prometheus-client's multiprocess files
    (CC_TELEGRAM_METRICS_DIR): ``counter_<pid>.db`` holds that process's own values."""
    from prometheus_client.mmap_dict import MmapedDict

    found: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _metric, sample, sample_labels, _help = json.loads(key)
            if sample == name and all(sample_labels.get(k) == v for k, v in labels.items()):
                found[pid] = found.get(pid, 0.0) + value
    return found


class PendingSampler(threading.Thread):
    """Samples, every few milliseconds, how many queue entries each consumer holds (XPENDING per lane): who got
    work, and how much at once."""

    def __init__(self, redis_url: str, key_prefix: str, every: float = 0.02) -> None:
        super().__init__(name="pending sampler", daemon=True)
        import redis

        self.client = redis.Redis.from_url(redis_url, decode_responses=True)
        self.lanes = [f"{key_prefix}:queue:lane:{lane}" for lane in range(4)]
        self.every = every
        self.max_held: Counter[str] = Counter()
        self.samples_holding: Counter[str] = Counter()
        self.latest: dict[str, int] = {}
        self._halt = threading.Event()

    def held_now(self) -> dict[str, int]:
        held: Counter[str] = Counter()
        for lane in self.lanes:
            with suppress(Exception):  # the stream or its group may not exist yet
                for row in self.client.xpending(lane, "bridge").get("consumers", []):
                    held[row["name"]] += int(row["pending"])
        return dict(held)

    def run(self) -> None:
        while not self._halt.is_set():
            self.latest = self.held_now()
            for name, count in self.latest.items():
                if count:
                    self.samples_holding[name] += 1
                    self.max_held[name] = max(self.max_held[name], count)
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.client.close()
