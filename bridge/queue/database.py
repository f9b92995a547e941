"""The durable queue in the database (QueueEntry rows): the embedded default on SQLite, and PostgreSQL.

A claim leases rows: ``leased_until`` = claim time + visibility timeout, ``leased_by`` = the consumer,
``deliveries`` + 1, all in one ``UPDATE ... WHERE id IN (due rows) RETURNING``. On PostgreSQL the due rows are
picked with ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent workers take different rows without waiting on
each other; SQLite serializes writers, so the single UPDATE is atomic there as it is.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from bridge.models import Event, QueueEntry
from bridge.queue import wakeup
from bridge.queue.base import LANES, Claimed, DeadLetter, DurableQueue, NewEntry, QueueError, over_max_reason
from bridge.queue.rows import drop_if_broken, insert_new

T = TypeVar("T")

DEFAULT_POLL_INTERVAL = 0.25
"""Seconds between polls while a claim blocks. An enqueue wakes claimers at once, in this process (the doorbell)
and in others (bridge.queue.wakeup); the poll is the safety net for a wake-up lost on the way."""


def _picked_sql(conn, condition: str, age: str) -> str:
    """``SELECT id`` of the entries ``_lease`` takes (parameters: dead, the condition's bound, the count); the
    same column names as QueueEntry's fields, which are also its columns."""
    qn = conn.ops.quote_name
    sql = (
        f"SELECT {qn('id')} FROM {qn(QueueEntry._meta.db_table)} WHERE {qn('dead')} = %s AND {condition} %s "
        f"ORDER BY {qn('lane')} DESC, {qn(age)} ASC, {qn('id')} ASC LIMIT %s"
    )
    # PostgreSQL: concurrent workers take different rows instead of waiting on each other's locks.
    return sql + " FOR UPDATE SKIP LOCKED" if conn.features.has_select_for_update_skip_locked else sql


def _db_time(value: datetime, conn) -> Any:
    return QueueEntry._meta.get_field("leased_until").get_db_prep_value(value, conn)


def _lease_sql(conn, picked_sql: str) -> str:
    """``UPDATE ... RETURNING`` leasing the rows ``picked_sql`` selects (SQLite 3.35+ and PostgreSQL)."""
    meta, qn = QueueEntry._meta, conn.ops.quote_name

    def col(name: str) -> str:
        return qn(meta.get_field(name).column)

    returned = ", ".join(col(name) for name in ("id", "event", "lane", "payload", "compressed", "deliveries"))
    return (
        f"UPDATE {qn(meta.db_table)} SET {col('leased_until')} = %s, {col('leased_by')} = %s, "
        f"{col('deliveries')} = {col('deliveries')} + 1 "
        f"WHERE {col('id')} IN ({picked_sql}) RETURNING {returned}"
    )


class _Doorbell:
    """Wakes blocked claimers of every DatabaseQueue in this process, whatever loop or thread they run in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def listen(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]:
        loop = asyncio.get_running_loop()
        waiter = (loop, loop.create_future())
        with self._lock:
            self._waiters.add(waiter)
        return waiter

    def forget(self, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]) -> None:
        with self._lock:
            self._waiters.discard(waiter)

    def ring(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_settle, future)
            except RuntimeError:  # that loop has closed: nobody is waiting there any more
                self.forget((loop, future))


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_doorbell = _Doorbell()


class DatabaseQueue(DurableQueue):
    """QueueEntry rows as a durable queue; entry ids are the row ids as strings.

    By default every query runs on Django's one thread for synchronous code (``sync_to_async``), which suits
    SQLite's single writer. ``threads=N`` gives the queue a pool of its own, each thread with its own connection,
    so that claims from one process run in parallel on PostgreSQL; ``close()`` then closes those connections.
    """

    def __init__(
        self,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        using: str = "default",
        threads: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.poll_interval = poll_interval
        self.using = using
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="db-queue") if threads else None
        self._hearing = False  # subscribed to other processes' wake-ups (on the first blocking claim)

    # --- the contract -----------------------------------------------------------------------------------------
    async def enqueue_batch(self, entries: list[NewEntry]) -> list[str | None]:
        if not entries:
            return []
        ids = await self._run(self._enqueue, entries)
        if any(ids):
            _doorbell.ring()
        return ids

    async def enqueue_new_events(
        self, insert_rows: Callable[[], list[NewEntry]]
    ) -> tuple[list[NewEntry], list[str | None]]:
        return self._rang(await self._run(self._insert_and_enqueue, insert_rows))

    def enqueue_new_events_sync(
        self, insert_rows: Callable[[], list[NewEntry]]
    ) -> tuple[list[NewEntry], list[str | None]]:
        return self._rang(self._guarded(self._insert_and_enqueue, insert_rows))

    async def claim(self, consumer: str, count: int, *, block_ms: int = 0) -> list[Claimed]:
        claimed, _ = await self.claim_then(consumer, count, None, block_ms=block_ms)
        return claimed

    async def claim_then(
        self, consumer: str, count: int, then: Callable[[list[Claimed]], T] | None, *, block_ms: int = 0
    ) -> tuple[list[Claimed], T | None]:
        if count <= 0:
            return [], None

        def claim_and_then() -> tuple[list[Claimed], T | None]:
            # One transaction, one commit for both (a commit is a good part of a small claim's time); ``then``
            # in a savepoint of its own, so that the claim stands whatever it does.
            with transaction.atomic(using=self.using):
                claimed = self._claim(consumer, count)
                if not claimed or then is None:
                    return claimed, None
                try:
                    with transaction.atomic(using=self.using):
                        return claimed, then(claimed)
                except Exception as exc:
                    failure = exc
            raise failure

        deadline = time.monotonic() + block_ms / 1000
        if block_ms > 0:
            self._hear_other_processes()
        while True:
            # Listen before looking, so that an enqueue between the query and the wait is not missed.
            waiter = _doorbell.listen()
            try:
                claimed, result = await self._run(claim_and_then)
                remaining = deadline - time.monotonic()
                if claimed or remaining <= 0:
                    return claimed, result
                await asyncio.wait([waiter[1]], timeout=min(self.poll_interval, remaining))
            finally:
                _doorbell.forget(waiter)

    async def ack(self, items: Iterable[Claimed], *, after: Callable[[], object] | None = None) -> None:
        pks = [int(item.entry_id) for item in items]
        if not pks and after is None:
            return

        def settle() -> None:
            with transaction.atomic(using=self.using):
                if after is not None:
                    after()
                if pks:
                    self._entries().filter(pk__in=pks).delete()

        await self._run(settle)

    async def retry_later(self, item: Claimed, delay_s: float, error: str) -> bool:
        def release() -> int:
            return self._held(item).update(
                leased_until=None,
                leased_by="",
                available_at=timezone.now() + timedelta(seconds=max(delay_s, 0.0)),
                last_error=error,
            )

        return bool(await self._run(release))

    async def dead_letter(self, item: Claimed, reason: str) -> bool:
        def bury() -> int:
            return self._held(item).update(dead=True, leased_until=None, leased_by="", last_error=reason)

        return bool(await self._run(bury))

    async def reclaim_stale(
        self, consumer: str, min_idle_ms: int | None = None, *, count: int = 100
    ) -> list[Claimed]:
        idle = self.visibility_timeout if min_idle_ms is None else min_idle_ms / 1000
        return await self._run(self._reclaim, consumer, idle, count)

    async def extend(self, consumer: str, items: Iterable[Claimed]) -> int:
        held = [(int(item.entry_id), item.deliveries) for item in items]
        if not held:
            return 0

        def renew() -> int:
            until = timezone.now() + timedelta(seconds=self.visibility_timeout)
            renewed = 0
            with transaction.atomic(using=self.using):
                for pk, deliveries in held:
                    renewed += (
                        self._entries()
                        .filter(pk=pk, dead=False, leased_by=consumer, deliveries=deliveries)
                        .update(leased_until=until)
                    )
            return renewed

        return await self._run(renew)

    async def depth(self) -> dict[int, int]:
        def count() -> dict[int, int]:
            rows = self._entries().filter(dead=False).values_list("lane").annotate(n=Count("pk")).order_by()
            return {lane: 0 for lane in LANES} | dict(rows)

        return await self._run(count)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        def read() -> list[DeadLetter]:
            rows = (
                self._entries()
                .filter(dead=True)
                .order_by("-pk")
                .values_list(
                    "pk",
                    "event_id",
                    "event__event_id",
                    "lane",
                    "payload",
                    "compressed",
                    "deliveries",
                    "last_error",
                )[:limit]
            )
            return [
                DeadLetter(str(pk), event_pk, event_id, lane, self._restore(bytes(payload), z), n, reason)
                for pk, event_pk, event_id, lane, payload, z, n, reason in rows
            ]

        return await self._run(read)

    async def requeue_dead(self, ids: Iterable[str] | None = None) -> int:
        def requeue() -> int:
            dead = self._entries().filter(dead=True)
            if ids is not None:
                dead = dead.filter(pk__in=[int(i) for i in ids])
            with transaction.atomic(using=self.using):
                requeued = dead.update(
                    dead=False, deliveries=0, leased_until=None, leased_by="", available_at=timezone.now()
                )
                if requeued:
                    wakeup.announce(self.using)
            return requeued

        requeued = await self._run(requeue)
        if requeued:
            _doorbell.ring()
        return requeued

    async def close(self) -> None:
        if self._hearing:
            self._hearing = False
            await asyncio.to_thread(wakeup.unsubscribe, self.using)
        if self._pool is None:
            await sync_to_async(self._close_connection)()
            return
        # One task per pool thread (the barrier holds each thread until all have one), so every connection closes.
        barrier = threading.Barrier(self._threads)

        def close_mine() -> None:
            barrier.wait(timeout=10)
            self._close_connection()

        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._pool, close_mine) for _ in range(self._threads)))
        self._pool.shutdown(wait=True)

    def _hear_other_processes(self) -> None:
        """Before the claim looks: enqueues committed after the look then wake this process."""
        if self._hearing:
            wakeup.refresh(self.using)
        else:
            wakeup.subscribe(self.using, _doorbell.ring)
            self._hearing = True

    @staticmethod
    def _rang(
        result: tuple[list[NewEntry], list[str | None]] | None,
    ) -> tuple[list[NewEntry], list[str | None]]:
        """``_insert_and_enqueue``'s result, this process's claimers woken when it queued anything."""
        if result is None:
            raise IntegrityError("an event of the batch is already stored")
        if any(result[1]):
            _doorbell.ring()
        return result

    # --- work done on a database thread -------------------------------------------------------------------------
    def _insert_and_enqueue(
        self, insert_rows: Callable[[], list[NewEntry]]
    ) -> tuple[list[NewEntry], list[str | None]] | None:
        """New events' rows and their entries in one transaction; None (nothing written) when one exists."""
        try:
            with transaction.atomic(using=self.using):
                entries = insert_rows()
                return entries, self._enqueue(entries, fresh=True)
        except IntegrityError:
            return None  # an event exists: not a storage failure, the caller's duplicate path

    def _enqueue(self, entries: list[NewEntry], *, fresh: bool = False) -> list[str | None]:
        """``fresh``: the events' rows were inserted in this transaction, so no entry can point to them yet and
        the look-up for queued ones is skipped (a quarter of the time of a one-event batch)."""
        now = timezone.now()
        # No savepoint inside enqueue_new_events' transaction: a failure here fails it whole anyway.
        with transaction.atomic(using=self.using, savepoint=False):
            queued_events: set[int] = set()
            if not fresh:
                queued_events.update(
                    self._entries()
                    .filter(event_id__in={e.event_pk for e in entries})
                    .values_list("event_id", flat=True)
                )
            rows: list[QueueEntry] = []
            positions: list[int] = []
            seen: set[str] = set()
            for position, entry in enumerate(entries):
                if entry.event_pk in queued_events or entry.event_id in seen:
                    continue
                seen.add(entry.event_id)
                queued_events.add(entry.event_pk)
                stored, compressed = self.compressor.compress(entry.payload)
                rows.append(
                    QueueEntry(
                        event_id=entry.event_pk,
                        lane=entry.lane,
                        payload=stored,
                        compressed=compressed,
                        available_at=now,
                    )
                )
                positions.append(position)
            insert_new(rows, using=self.using)
            if rows:
                wakeup.announce(self.using)
        ids: list[str | None] = [None] * len(entries)
        for position, row in zip(positions, rows, strict=True):
            ids[position] = str(row.pk)
        return ids

    def _claim(self, consumer: str, count: int) -> list[Claimed]:
        now = timezone.now()
        return self._lease(
            "leased_until IS NULL AND available_at <=", "available_at", now, consumer, count, now
        )

    def _reclaim(self, consumer: str, idle_s: float, count: int) -> list[Claimed]:
        now = timezone.now()
        # Claimed at leased_until - visibility_timeout; idle for idle_s when that is at least idle_s ago.
        cutoff = now + timedelta(seconds=self.visibility_timeout - idle_s)
        return self._lease("leased_until <=", "leased_until", cutoff, consumer, count, now)

    def _lease(
        self, condition: str, age: str, bound: datetime, consumer: str, count: int, now: datetime
    ) -> list[Claimed]:
        """Lease to ``consumer``, in one statement, the first ``count`` live entries where ``condition`` (SQL on
        this table's columns, ending in a comparison with ``bound``) holds, higher lanes first and then oldest by
        column ``age``; bury those over max_deliveries. The statement is written out rather than built by the
        ORM: building it cost ~1 ms a claim, on the thread every database call queues behind."""
        if count <= 0:
            return []
        conn = connections[self.using]
        # No savepoint inside claim_then's transaction: a failure here fails it whole, before anything else ran.
        with transaction.atomic(using=self.using, savepoint=False):
            sql = _lease_sql(conn, _picked_sql(conn, condition, age))
            with conn.cursor() as cursor:
                cursor.execute(
                    sql,
                    (
                        _db_time(now + timedelta(seconds=self.visibility_timeout), conn),
                        consumer,
                        False,
                        _db_time(bound, conn),
                        count,
                    ),
                )
                rows = sorted(cursor.fetchall(), key=lambda row: (-row[2], row[0]))  # lane first, then age
            if not rows:
                return []
            live = []
            for row in rows:
                pk, deliveries = row[0], row[5]
                if self._over_max(deliveries):
                    reason = over_max_reason(deliveries, self.max_deliveries)
                    self._entries().filter(pk=pk).update(
                        dead=True, leased_until=None, leased_by="", last_error=reason
                    )
                else:
                    live.append(row)
            events = {
                pk: (event_id, received_at.timestamp())
                for pk, event_id, received_at in Event.objects.using(self.using)
                .filter(pk__in={row[1] for row in live})
                .order_by()
                .values_list("pk", "event_id", "received_at")
            }
        return [
            Claimed(
                str(pk),
                event_pk,
                events[event_pk][0],
                lane,
                self._restore(bytes(payload), bool(z)),
                n,
                enqueued_at=events[event_pk][1],
            )
            for pk, event_pk, lane, payload, z, n in live
        ]

    def _held(self, item: Claimed) -> QuerySet:
        """The entry if it is still under the claim ``item`` came from."""
        return self._entries().filter(pk=int(item.entry_id), dead=False, deliveries=item.deliveries)

    def _entries(self) -> QuerySet:
        return QueueEntry.objects.using(self.using)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            return await sync_to_async(self._guarded)(fn, *args)
        return await sync_to_async(self._guarded, thread_sensitive=False, executor=self._pool)(fn, *args)

    def _close_connection(self) -> None:
        conn = connections[self.using]
        if not conn.in_atomic_block:
            conn.close()

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        # A worker is one long "request": keep the connection (reopening an SQLite WAL database costs ~3 ms, a
        # PostgreSQL one more), but drop one that broke, e.g. when the server restarted, so the next call
        # reconnects.
        drop_if_broken(self.using)
        try:
            return fn(*args)
        except DatabaseError as exc:
            raise QueueError(f"database queue: {exc}") from exc
