"""The bench's isolated world: a temporary home folder, a database and a Redis of its own.

``manage.py bench`` never measures inside the user's installation. The command is a launcher: it builds a World,
then runs ``manage.py bench`` again in a child process whose environment points at that world (``WORLD_ENV`` set).
Django reads its settings from the environment once, at start-up, so a fresh process is the one clean way to give
every setting (home folder, database, Redis) the bench's values; and every process the bench starts in turn (a
bridge worker, daphne, the MCP server, a hook) inherits the same world with the environment.

- home: a temporary folder (CC_TELEGRAM_HOME), removed at the end unless ``keep``.
- database: SQLite in that folder. When DATABASE_URL names a PostgreSQL server, a throwaway database is created
  on that server instead and dropped at the end; the database the URL names is never touched.
- Redis (for the Redis Streams measurements only; the bridge itself runs on the embedded default unless a scenario
  says otherwise): REDIS_URL when set, under a key prefix of the run's own that is deleted at the end; else a
  throwaway ``redis-server`` on a free port; else none, and the Redis-only measurements print why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

WORLD_ENV = "CC_TELEGRAM_BENCH_WORLD"
"""Set in the child: the home folder of the world it runs in. Never set it by hand."""
REDIS_ENV = "CC_TELEGRAM_BENCH_REDIS_URL"
"""The Redis the Redis measurements use (empty when there is none)."""
REDIS_MISSING_ENV = "CC_TELEGRAM_BENCH_REDIS_MISSING"
"""Why there is no Redis, for the "not run" lines."""

# Variables of the user's installation that must not leak into the world: they would point the bench at the
# user's folders, chats, Redis or database.
_SCRUBBED = (
    "CC_TELEGRAM_EVENTS_DIR",
    "CC_TELEGRAM_RESPONSES_DIR",
    "REDIS_URL",
    "CC_TELEGRAM_REDIS_URL",
    "DATABASE_URL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_BASE_URL",
    "TELEGRAM_ALLOWED_USERS",
    "TELEGRAM_WEBHOOK_SECRET",
    "CC_TELEGRAM_METRICS_TOKEN",
    "MCP_API_KEYS",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class World:
    """Build with ``with World(...) as world:``; ``world.env`` is the child's environment."""

    def __init__(self, *, keep: bool = False, log=None) -> None:
        self.keep = keep
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.token = uuid.uuid4().hex[:10]
        self.home = Path(tempfile.mkdtemp(prefix="cct-bench-"))
        self.redis_url = ""
        self.redis_missing = ""
        self.redis_prefix = f"cct-bench-{self.token}"
        self._redis_process: subprocess.Popen | None = None
        self._shared_redis = False
        self.database_url = ""
        self._pg_admin_url = ""
        self._pg_name = ""

    # --- set-up -----------------------------------------------------------------------------------------------
    def __enter__(self) -> World:
        try:
            self._database()
            self._redis()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _database(self) -> None:
        url = os.environ.get("DATABASE_URL", "")
        if urlsplit(url).scheme not in ("postgres", "postgresql"):
            return  # SQLite in the temporary home
        import psycopg

        parts = urlsplit(url)
        self._pg_name = f"cctelegram_bench_{self.token}"
        # Like Django's test runner: work from the server's maintenance database, which exists even where the
        # database the URL names does not yet.
        self._pg_admin_url = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(self._pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self._pg_name}"')
        self.database_url = urlunsplit(parts._replace(path=f"/{self._pg_name}"))
        self.log(f"bench database: throwaway PostgreSQL database {self._pg_name} on {parts.hostname}")

    def _redis(self) -> None:
        url = os.environ.get("REDIS_URL") or os.environ.get("CC_TELEGRAM_REDIS_URL")
        if url:
            self.redis_url, self._shared_redis = url, True
            self.log(f"bench Redis: REDIS_URL, keys under {self.redis_prefix}:* (deleted at the end)")
            return
        server = shutil.which("redis-server")
        if server is None:
            self.redis_missing = "no Redis: REDIS_URL is unset and redis-server is not installed"
            self.log(f"bench Redis: {self.redis_missing}")
            return
        port = free_port()
        folder = self.home / "redis"
        folder.mkdir()
        self._redis_process = subprocess.Popen(
            [
                *(server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
                *("--dir", str(folder), "--logfile", str(folder / "redis.log"), "--daemonize", "no"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 5
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or self._redis_process.poll() is not None:
                    self.redis_missing = "no Redis: the throwaway redis-server did not start"
                    self.log(f"bench Redis: {self.redis_missing}")
                    self._stop_redis()
                    return
                time.sleep(0.05)
        client.close()
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self.log(f"bench Redis: throwaway redis-server on port {port}")

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        env.update(
            {
                WORLD_ENV: str(self.home),
                "CC_TELEGRAM_HOME": str(self.home / "home"),
                REDIS_ENV: self.redis_url,
                REDIS_MISSING_ENV: self.redis_missing,
                "CC_TELEGRAM_REDIS_PREFIX": self.redis_prefix,
                # DEBUG keeps every SQL query in memory: it would read as a leak in the flood and soak figures.
                "DJANGO_DEBUG": "0",
                "CC_TELEGRAM_LOG_LEVEL": os.environ.get("CC_TELEGRAM_BENCH_LOG_LEVEL", "WARNING"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        return env

    # --- running ----------------------------------------------------------------------------------------------
    def run(self, command: list[str]) -> int:
        """Run ``command`` in the world; Ctrl-C reaches it (same process group) and is waited for."""
        process = subprocess.Popen(command, env=self.env)
        try:
            return process.wait()
        except KeyboardInterrupt:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                return process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                return process.wait()

    # --- tear-down --------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._stop_redis()
        if self._shared_redis and self.redis_url:
            self._delete_redis_keys()
        if self._pg_name:
            self._drop_database()
        if self.keep:
            self.log(f"bench world kept in {self.home}")
        else:
            shutil.rmtree(self.home, ignore_errors=True)

    def _stop_redis(self) -> None:
        process, self._redis_process = self._redis_process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _delete_redis_keys(self) -> None:
        try:
            delete_keys(self.redis_url, self.redis_prefix)
        except Exception as error:  # redis.RedisError, without importing redis for a run that has none
            self.log(f"could not delete the bench's Redis keys {self.redis_prefix}*: {error}")

    def _drop_database(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self._pg_admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self._pg_name}" WITH (FORCE)')
        except psycopg.Error as error:
            self.log(f"could not drop the bench database {self._pg_name}: {error}")


def delete_keys(url: str, prefix: str) -> None:
    """Delete every key of the run's prefix (raises redis.RedisError): its own (queues, rate buckets), and the Django
    cache's entries of it (under the cache's KEY_PREFIX, e.g. ``cct:1:<prefix>:cache:...``)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for pattern in (f"{prefix}*", f"*:{prefix}:*"):
            batch = []
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    client.delete(*batch)
                    batch.clear()
            if batch:
                client.delete(*batch)
    finally:
        client.close()
