"""Wake-ups across processes for the database queue: an entry enqueued by one process (the MCP server, send_event,
a hook, another worker) wakes the claims blocked in the others at once, instead of at their next poll.

PostgreSQL: ``pg_notify`` inside the enqueue's transaction, delivered at its commit to every connection that
LISTENs (on any machine); a claiming process LISTENs on a connection of its own, read by a thread. SQLite: after
the commit, one loopback datagram (bridge.channel.wake.ring) to each claiming process, whose port is registered as
the file ``queue-wake/<port>`` under CC_TELEGRAM_HOME.

A wake-up carries no entry, only who sent it (so that a process ignores its own: its claimers were woken in
process already). Claimers read the database, which stays the truth, and still poll it, so a lost wake-up, a dead
port in the folder or a listener not yet connected only costs latency.
"""

from __future__ import annotations

import logging
import os
import secrets
import select
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction

from bridge.channel import wake

logger = logging.getLogger(__name__)

CHANNEL = "cc_telegram_queue"
"""The PostgreSQL notification channel of the queue."""

FOLDER = "queue-wake"
"""Under CC_TELEGRAM_HOME: one empty-named file per listening process, its name the port, its content the pid."""

RECONNECT_SECONDS = 1.0
"""Pause before a PostgreSQL listener reconnects after its connection broke (the poll covers the gap)."""

_ME = secrets.token_hex(8)
"""This process, in the notifications it sends."""


def announce(using: str) -> None:
    """Tell the other processes that entries are committed, or will be when the current transaction commits.

    Call inside the transaction that writes them. Never raises on SQLite (a poke is a hint); on PostgreSQL the
    notification is part of the transaction, so it fails (and rolls back) only with the transaction itself."""
    conn = connections[using]
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, _ME))
    else:
        transaction.on_commit(poke_others, using=using)


def poke_others() -> None:
    """One datagram to every process registered under CC_TELEGRAM_HOME, this one excepted (~20 us each)."""
    folder = Path(settings.CC_TELEGRAM_HOME) / FOLDER
    try:
        names = os.listdir(folder)
    except OSError:
        return  # nobody has listened here yet
    own = _listeners.get_port()
    ports = [int(name) for name in names if name.isdigit() and int(name) != own]
    if ports:
        wake.ring(ports)


class _Listener:
    """One thread hearing wake-ups for one database alias and calling ``on_wake`` for each."""

    def __init__(self, using: str, on_wake: Callable[[], None]) -> None:
        self.using = using
        self.on_wake = on_wake
        self.users = 0
        self.port = 0
        self._registered: Path | None = None
        self._sock: socket.socket | None = None
        self._stop_r, self._stop_w = os.pipe()
        self._postgres = connections[using].vendor == "postgresql"
        self._params = connections[using].get_connection_params() if self._postgres else None
        if not self._postgres:
            # Bound and registered before the first claim looks, so no enqueue committed after that look is missed.
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.bind((wake.HOST, 0))
            self.port = self._sock.getsockname()[1]
            self.register()
        self._thread = threading.Thread(
            target=self._listen_postgres if self._postgres else self._listen_datagrams,
            name=f"queue-wakeup-{using}",
            daemon=True,
        )
        self._thread.start()

    def register(self) -> None:
        """The port's file in the current CC_TELEGRAM_HOME (tests change it); files of dead processes removed."""
        folder = Path(settings.CC_TELEGRAM_HOME) / FOLDER
        path = folder / str(self.port)
        if self._sock is None or path == self._registered:
            return
        self._unregister()
        folder.mkdir(parents=True, exist_ok=True)
        _prune(folder)
        path.write_text(str(os.getpid()))
        self._registered = path

    def stop(self) -> None:
        os.write(self._stop_w, b"!")
        self._thread.join(timeout=10)
        os.close(self._stop_r)
        os.close(self._stop_w)
        if self._sock is not None:
            self._sock.close()
        self._unregister()

    def _unregister(self) -> None:
        if self._registered is not None:
            self._registered.unlink(missing_ok=True)
            self._registered = None

    def _wait(self, fd: int) -> bool:
        """Whether ``fd`` is readable; False once stop() was called."""
        ready, _, _ = select.select([fd, self._stop_r], [], [])
        return self._stop_r not in ready

    def _listen_datagrams(self) -> None:
        assert self._sock is not None
        while self._wait(self._sock.fileno()):
            try:
                self._sock.recv(64)
            except OSError:
                continue
            self.on_wake()

    def _listen_postgres(self) -> None:
        import psycopg

        params = {k: v for k, v in self._params.items() if k not in ("context", "cursor_factory")}
        connected = True  # so that the first failure is logged as a warning, and later ones of the outage not
        while True:
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    connected = True
                    self.on_wake()  # whatever was enqueued while this was not listening yet
                    while self._wait(conn.fileno()):
                        if any(note.payload != _ME for note in conn.notifies(timeout=0)):
                            self.on_wake()
                        if conn.broken:  # readable because the server went away
                            raise psycopg.OperationalError("the listening connection broke")
                    return
            except psycopg.Error as error:
                log = logger.warning if connected else logger.debug
                log("queue wake-ups: no PostgreSQL listener (%s); claims poll until it reconnects", error)
                connected = False
            ready, _, _ = select.select([self._stop_r], [], [], RECONNECT_SECONDS)
            if ready:
                return


def _prune(folder: Path) -> None:
    """Remove the files of processes that are gone (killed before they could remove their own)."""
    for path in folder.iterdir():
        try:
            pid = int(path.read_text() or 0)
        except (OSError, ValueError):
            continue
        if pid <= 0:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, someone else's


class _Listeners:
    """The process's listeners, one per database alias, shared by the queues that block on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_alias: dict[str, _Listener] = {}

    def subscribe(self, using: str, on_wake: Callable[[], None]) -> None:
        with self._lock:
            listener = self._by_alias.get(using)
            if listener is None:
                listener = self._by_alias[using] = _Listener(using, on_wake)
            listener.users += 1

    def refresh(self, using: str) -> None:
        listener = self._by_alias.get(using)
        if listener is not None:
            listener.register()

    def unsubscribe(self, using: str) -> None:
        with self._lock:
            listener = self._by_alias.get(using)
            if listener is None:
                return
            listener.users -= 1
            if listener.users > 0:
                return
            del self._by_alias[using]
        listener.stop()

    def get_port(self) -> int:
        return next((listener.port for listener in self._by_alias.values() if listener.port), 0)


_listeners = _Listeners()
subscribe = _listeners.subscribe
"""``subscribe(using, on_wake)``: hear wake-ups for database ``using`` until as many ``unsubscribe(using)``."""
unsubscribe = _listeners.unsubscribe
refresh = _listeners.refresh
"""``refresh(using)``: re-register under the current CC_TELEGRAM_HOME if it changed (cheap when it did not)."""
