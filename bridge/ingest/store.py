"""Store: typed events in, durable Event rows and queue entries out, duplicates recognised by event_id."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction

from bridge.events.schema import Event
from bridge.models import Event as EventRow
from bridge.queue.base import NewEntry
from bridge.queue.rows import insert_new

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stored:
    event_id: str
    pk: int
    duplicate: bool


class EventStore:
    """Makes events durable: when ``store`` returns, each event has its row and (unless it is a duplicate) its
    queue entry, so the caller may delete the file it came from."""

    def __init__(self, queue) -> None:
        self.queue = queue

    async def store(self, events: Sequence[Event]) -> list[Stored]:
        """One Stored per event, in order. Raises QueueError (or a DatabaseError) when either write failed; rows
        written before the failure are queued by the next attempt."""
        if not events:
            return []
        if len({event.event_id for event in events}) == len(events):
            # Events are almost always new: their rows and entries go in one trip to the database thread (one
            # transaction on the database queue) instead of three (look up, insert, enqueue), which was about half
            # of the file -> durably queued latency.
            try:
                return await self._store_new(events)
            except IntegrityError:
                pass  # some were stored before: a file taken again after a crash, a re-written file
        return await self._store_checked(events)

    async def _store_new(self, events: Sequence[Event]) -> list[Stored]:
        """Insert every event's row, no look-up first; IntegrityError (and nothing written) if one exists."""
        return _stored(*await self.queue.enqueue_new_events(partial(_new_entries, events)))

    def store_new_sync(self, events: Sequence[Event]) -> list[Stored]:
        """``store`` for events that are new (their ids unique and random), on a caller's own thread with no event
        loop: IntegrityError (nothing written) when one exists, NotImplementedError when the queue cannot work
        synchronously; the caller then takes ``store``."""
        return _stored(*self.queue.enqueue_new_events_sync(partial(_new_entries, events)))

    async def _store_checked(self, events: Sequence[Event]) -> list[Stored]:
        """``store`` for events some of which may be stored already, or share an id: look up, insert what is new,
        enqueue what is not queued yet."""
        rows, fresh, payloads = await sync_to_async(_insert_and_serialize)(events)
        # Several events in one batch can share an event_id (the same file twice, or one explicit id): queue the
        # first, the one whose row was stored.
        unique: dict[str, NewEntry] = {}
        for e in events:
            if e.event_id in fresh and e.event_id not in unique:
                unique[e.event_id] = NewEntry(
                    event_pk=rows[e.event_id],
                    event_id=e.event_id,
                    lane=int(e.priority),
                    payload=payloads[e.event_id],
                )
        accepted = set()
        if unique:
            entries = list(unique.values())
            ids = await self.queue.enqueue_batch(entries)
            accepted = {
                entry.event_id for entry, entry_id in zip(entries, ids, strict=True) if entry_id is not None
            }
        seen: set[str] = set()
        results = []
        for event in events:
            first = event.event_id in accepted and event.event_id not in seen
            seen.add(event.event_id)
            results.append(Stored(event.event_id, rows[event.event_id], duplicate=not first))
        return results


def _new_entries(events: Sequence[Event]) -> list[NewEntry]:
    """Insert new events' rows; their queue entries, pks filled in."""
    rows = [_row(event) for event in events]
    insert_new(rows)
    # Serialized here, on the thread that writes the rows anyway: a 1 MB event takes ~8 ms.
    return [
        NewEntry(event_pk=row.pk, event_id=event.event_id, lane=int(event.priority), payload=event.to_json())
        for row, event in zip(rows, events, strict=True)
    ]


def _stored(entries: list[NewEntry], ids: list[str | None]) -> list[Stored]:
    return [
        Stored(entry.event_id, entry.event_pk, duplicate=entry_id is None)
        for entry, entry_id in zip(entries, ids, strict=True)
    ]


def _insert_and_serialize(events: Sequence[Event]) -> tuple[dict[str, int], set[str], dict[str, bytes]]:
    """``_insert_rows``, plus the queue payload of the first event of each id still to queue: serializing a 1 MB
    event takes ~8 ms, so it happens here, on the thread that writes the rows anyway, not on the event loop."""
    rows, fresh = _insert_rows(events)
    payloads: dict[str, bytes] = {}
    for event in events:
        if event.event_id in fresh and event.event_id not in payloads:
            payloads[event.event_id] = event.to_json()
    return rows, fresh, payloads


def _insert_rows(events: Sequence[Event]) -> tuple[dict[str, int], set[str]]:
    """Insert the rows not there yet. Returns every event's pk and the ids that still need a queue entry:
    new rows, and rows still queued (a crash between their insert and their enqueue, or another worker storing the
    same event right now); the queue's own dedup keeps the latter from being queued twice.

    One read and one short write transaction per batch: the read needs no transaction, because a row inserted by
    another worker in between makes the insert fail and the one-by-one fallback sort it out.
    """
    existing: dict[str, int] = {}
    pending: set[str] = set()
    found = EventRow.objects.filter(event_id__in={e.event_id for e in events}).values_list(
        "event_id", "pk", "status"
    )
    for event_id, pk, status in found:
        existing[event_id] = pk
        if status == EventRow.Status.QUEUED:
            pending.add(event_id)
    new_rows: dict[str, EventRow] = {}
    for event in events:
        if event.event_id not in existing and event.event_id not in new_rows:
            new_rows[event.event_id] = _row(event)
    if not new_rows:
        return existing, pending
    try:
        with transaction.atomic():
            created = list(new_rows.values())
            insert_new(created)
    except IntegrityError:
        # Another worker stored some of these between our read and our insert: one by one, each on its own.
        created = []
        for row in new_rows.values():
            obj, made = EventRow.objects.get_or_create(event_id=row.event_id, defaults=_fields(row))
            if made:
                created.append(obj)
            else:
                existing[obj.event_id] = obj.pk
                if obj.status == EventRow.Status.QUEUED:
                    pending.add(obj.event_id)
    rows = existing | {row.event_id: row.pk for row in created}
    return rows, pending | {row.event_id for row in created}


def _row(event: Event) -> EventRow:
    return EventRow(
        event_id=event.event_id,
        type=event.type,
        category=event.category,
        source=event.source[:200],
        task_id=event.task_id[:200],
        title=event.title,
        description=event.description,
        data=event.data,
        priority=int(event.priority),
        origin=event.origin,
        timestamp=event.timestamp,
    )


def _fields(row: EventRow) -> dict:
    return {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields if f.attname not in ("id",)}
