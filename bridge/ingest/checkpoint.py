"""SQLite write-ahead-log checkpoints off the ingest path.

On SQLite (WAL mode) every commit appends its pages to the log, and the commit that takes the log past 1,000 pages
also copies the log back into the database file, with two fsyncs: 10-60 ms on this kind of machine, spent inside
that event's store call while the events renamed in behind it wait. An event and its queue entry touch about 16
pages (rows and their indexes), so at 50 events/s one event in 60 paid for it: the p99 of "file renamed -> durably
queued" was the checkpoint's.

Here a thread of its own, on its own connection, runs a PASSIVE checkpoint shortly after writes: it does not block
writers, so commits keep appending while it copies, and the log is restarted from its beginning by the next
commit long before it reaches SQLite's own threshold. That threshold stays as the safety net (a flood writes
faster than one checkpoint per interval, and other processes write too). Nothing to do on PostgreSQL.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from django.db import connections

logger = logging.getLogger(__name__)

# Writes are gathered this long before a checkpoint: at 50 events/s that is ~160 pages, far below the 1,000 that
# would make a commit checkpoint by itself, and at most five fsync pairs a second while events flow.
INTERVAL = 0.2


class WalCheckpointer:
    """Call ``wrote()`` after each commit; between ``start()`` and ``stop()`` the log of the SQLite database at
    ``path`` is checkpointed within ``interval`` seconds of it. Idle, the thread sleeps on an event: no wake-ups,
    no CPU."""

    def __init__(self, path: str, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0  # how many ran (the tests wait on it)
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_database(cls, using: str = "default") -> WalCheckpointer | None:
        """One for the Django database ``using`` when it is an SQLite file; None otherwise (nothing to do)."""
        connection = connections[using]
        if connection.vendor != "sqlite" or connection.is_in_memory_db():
            return None
        return cls(str(connection.settings_dict["NAME"]))

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def wrote(self) -> None:
        self._dirty.set()

    def stop(self) -> None:
        """Stop the thread after a last checkpoint of what was written."""
        if self._thread is None:
            return
        self._stopping.set()
        self._dirty.set()
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        connection = sqlite3.connect(self.path)
        try:
            while True:
                self._dirty.wait()
                # Gather the writes of the next moment into this checkpoint, unless stopping.
                self._stopping.wait(self.interval)
                self._dirty.clear()
                self._checkpoint(connection)
                if self._stopping.is_set():
                    return
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            logger.warning(
                "WAL checkpoint of %s failed (%s); SQLite checkpoints on commit meanwhile", self.path, exc
            )
        self.checkpoints += 1
