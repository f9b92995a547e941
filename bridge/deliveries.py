"""Delivery records: the database side of sending, in batched, synchronous functions (run off the event loop).

The sender never trusts memory for what was sent: a delivery recorded as sent is skipped by every later attempt,
after a retry, a crash and reclaim, or a requeued dead letter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from bridge.models import Delivery, Event, Recipient
from bridge.routing import Target

QUEUED, SUPPRESSED = Delivery.Status.QUEUED, Delivery.Status.SUPPRESSED
TERMINAL = (
    Delivery.Status.SENT,
    Delivery.Status.DEAD,
    Delivery.Status.SUPPRESSED,
    Delivery.Status.DIGESTED,
)


@dataclass(frozen=True, slots=True)
class Pending:
    delivery_pk: int
    chat_id: int
    recipient_pk: int
    attempts: int
    message_ids: tuple[int, ...] = ()
    """The parts of a split message already sent (recorded before their retry): a retry sends the rest."""


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_pk: int
    status: str
    attempts: int
    error: str = ""
    message_ids: tuple[int, ...] = ()
    latency_ms: float | None = None


def load_targets() -> list[Target]:
    return [
        Target(
            pk=r.pk,
            chat_id=r.chat_id,
            role=r.role,
            sources=tuple(r.source_list()),
            categories=tuple(r.categories or ()),
            min_priority=r.min_priority,
        )
        for r in Recipient.objects.filter(active=True)
    ]


def prepare(routed_by_event: dict[int, list[tuple[Target, bool]]]) -> dict[int, list[Pending]]:
    """Create the deliveries of a batch of events (once: later calls find them) and return, per event, those
    still to be sent. One transaction and two statements whatever the batch size: under load the sender claims
    tens of events at a time, and a round trip to the database thread per event was its slowest step.

    Both statements written out: this is on every event's way to Telegram, and the ORM spent ~1.5 ms building
    them (bulk_create with ignore_conflicts, then a filtered, joined values_list), most of the time of a claim."""
    connection = connections[router.db_for_write(Delivery)]
    q = connection.ops.quote_name
    table, recipients = q(Delivery._meta.db_table), q(Recipient._meta.db_table)
    now = timezone.now()
    names = (
        "event",
        "recipient",
        "status",
        "attempts",
        "last_error",
        "message_ids",
        "created_at",
        "updated_at",
    )
    fields = [Delivery._meta.get_field(name) for name in names]
    rows = [
        [
            f.get_db_prep_save(v, connection)
            for f, v in zip(
                fields,
                (event_pk, target.pk, SUPPRESSED if suppressed else QUEUED, 0, "", [], now, now),
                strict=True,
            )
        ]
        for event_pk, routed in routed_by_event.items()
        for target, suppressed in routed
    ]
    event_pks = list(routed_by_event)
    pending: dict[int, list[Pending]] = {event_pk: [] for event_pk in event_pks}
    with transaction.atomic(using=connection.alias, savepoint=False), connection.cursor() as cursor:
        if rows:
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(q(f.column) for f in fields)}) "
                f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING",
                rows,
            )
        cursor.execute(
            f"SELECT d.{q('event_id')}, d.{q('id')}, r.{q('chat_id')}, d.{q('recipient_id')}, d.{q('attempts')}, "
            f"d.{q('message_ids')} "
            f"FROM {table} d JOIN {recipients} r ON r.{q('id')} = d.{q('recipient_id')} "
            f"WHERE d.{q('event_id')} IN ({', '.join(['%s'] * len(event_pks))}) "
            f"AND d.{q('status')} NOT IN ({', '.join(['%s'] * len(TERMINAL))}) "
            f"ORDER BY d.{q('event_id')}, d.{q('id')}",
            [*event_pks, *TERMINAL],
        )
        for event_pk, pk, chat_id, recipient_pk, attempts, message_ids in cursor.fetchall():
            pending[event_pk].append(Pending(pk, chat_id, recipient_pk, attempts, _ids(message_ids)))
    return pending


def _ids(stored: str | list | None) -> tuple[int, ...]:
    """A message_ids column as read by a raw cursor: JSON text (SQLite; Django's PostgreSQL connections load
    jsonb as text too), or already a list."""
    if not stored or stored == "[]":  # every delivery not yet part-sent: no JSON parsing on the hot path
        return ()
    return tuple(json.loads(stored) if isinstance(stored, str) else stored)


def record(outcomes: Iterable[Outcome]) -> None:
    """Write a batch of outcomes in one transaction: one prepared UPDATE per kind of outcome, run for every row
    (an ORM update per row costs ~0.2 ms of query building, on the thread every database call queues behind)."""
    now = timezone.now()
    groups: dict[tuple[str, ...], list[tuple[list, int]]] = {}
    for o in outcomes:
        values = {"status": o.status, "attempts": o.attempts, "last_error": o.error[:2000], "updated_at": now}
        if o.message_ids:
            values["message_ids"] = list(o.message_ids)
        if o.status in (Delivery.Status.SENT, Delivery.Status.DIGESTED):
            values["sent_at"] = now
            values["latency_ms"] = o.latency_ms
        groups.setdefault(tuple(values), []).append((list(values.values()), o.delivery_pk))
    if not groups:
        return
    connection = connections[router.db_for_write(Delivery)]
    quote = connection.ops.quote_name
    with transaction.atomic(using=connection.alias, savepoint=False), connection.cursor() as cursor:
        for names, rows in groups.items():
            fields = [Delivery._meta.get_field(name) for name in names]
            assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
            cursor.executemany(
                f"UPDATE {quote(Delivery._meta.db_table)} SET {assignments} WHERE {quote('id')} = %s",
                [
                    [*(f.get_db_prep_save(v, connection) for f, v in zip(fields, values, strict=True)), pk]
                    for values, pk in rows
                ],
            )


def finish_events(event_pks: Iterable[int]) -> None:
    """Mark events done once none of their deliveries is still open; failed when any went dead.

    One statement written out (the ORM spends ~2 ms building this one, every round of the sender's books)."""
    pks = list(event_pks)
    if not pks:
        return
    connection = connections[router.db_for_write(Event)]
    q = connection.ops.quote_name
    event, delivery = q(Event._meta.db_table), q(Delivery._meta.db_table)
    of_event = f"SELECT 1 FROM {delivery} d WHERE d.{q('event_id')} = {event}.{q('id')} AND d.{q('status')}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {event} SET {q('status')} = CASE WHEN EXISTS ({of_event} = %s) THEN %s ELSE %s END "
            f"WHERE {q('id')} IN ({', '.join(['%s'] * len(pks))}) "
            f"AND NOT EXISTS ({of_event} NOT IN ({', '.join(['%s'] * len(TERMINAL))}))",
            [Delivery.Status.DEAD, Event.Status.FAILED, Event.Status.DONE, *pks, *TERMINAL],
        )


def settle(outcomes: list[Outcome], finished_event_pks: list[int]) -> None:
    """One round of bookkeeping after sends: record the outcomes, then close the events they complete, in one
    transaction (the queue acks those events only after this returned; see DurableQueue.ack's ``after``)."""
    with transaction.atomic(savepoint=False):  # inside the queue's ack transaction, a savepoint buys nothing
        record(outcomes)
        finish_events(finished_event_pks)


def follow_migration(recipient_pk: int, new_chat_id: int) -> None:
    """A group became a supergroup: keep the recipient, with its new chat id."""
    Recipient.objects.filter(pk=recipient_pk).exclude(Q(chat_id=new_chat_id)).update(chat_id=new_chat_id)
