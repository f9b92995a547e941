"""Operator actions, shared by the admin, management commands and the control channel.

Messages to workers travel on the channel layer, which is at-most-once: every action here leaves its result in
the database first (settings version, reopened deliveries), so a lost message only delays it to the next
heartbeat, and every action is audited.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from bridge.consumers import WORKERS_GROUP
from bridge.events.schema import Event as TypedEvent
from bridge.health import WORKER_STALE
from bridge.models import (
    AuditEntry,
    BridgeSettings,
    Delivery,
    Event,
    Recipient,
    Response,
    Worker,
    WorkerSample,
    bump_settings,
)
from bridge.queue.base import DurableQueue, NewEntry

logger = logging.getLogger(__name__)

RETRYABLE = (Delivery.Status.FAILED, Delivery.Status.DEAD)
PURGE_BATCH = 1000  # events deleted per statement: bounded IN lists and short write locks on SQLite


def _reopen(event_pks: Iterable[int]) -> list[Event]:
    """Put the failed and dead deliveries of these events back to queued; returns the events that had any."""
    with transaction.atomic():
        reopened = list(
            Delivery.objects.filter(event_id__in=list(event_pks), status__in=RETRYABLE)
            .values_list("event_id", flat=True)
            .distinct()
        )
        Delivery.objects.filter(event_id__in=reopened, status__in=RETRYABLE).update(
            status=Delivery.Status.QUEUED, attempts=0, last_error=""
        )
        Event.objects.filter(pk__in=reopened).update(status=Event.Status.QUEUED)
        return list(Event.objects.filter(pk__in=reopened))


async def requeue_events(queue: DurableQueue, event_pks: Iterable[int]) -> int:
    """Send the failed and dead deliveries of these events again; returns how many events were requeued.

    Deliveries already sent are not sent again: the sender skips every delivery recorded as sent.
    """
    events = await sync_to_async(_reopen)(list(event_pks))
    if not events:
        return 0
    # A fresh identity per requeue: the queue's dedup (by event_id) must not swallow a deliberate retry.
    stamp = int(time.time() * 1000)
    entries = [
        NewEntry(
            event_pk=row.pk,
            event_id=f"{row.event_id}#retry-{stamp}",
            lane=row.priority,
            payload=typed_event(row).to_json(),
        )
        for row in events
    ]
    await queue.enqueue_batch(entries)
    return len(entries)


async def requeue_event(queue: DurableQueue, event_pk: int) -> int:
    return await requeue_events(queue, [event_pk])


def typed_event(row: Event) -> TypedEvent:
    return TypedEvent(
        event_id=row.event_id,
        type=row.type,
        title=row.title,
        description=row.description,
        source=row.source,
        timestamp=row.timestamp,
        task_id=row.task_id,
        data=row.data,
        origin=row.origin,
    )


# --- telling the workers ---------------------------------------------------------------------------------------
def notify_workers(message: dict) -> None:
    """Send ``message`` to every bridge worker once the current transaction commits (at once outside one).

    Never raises: with the channel layer down, workers still see settings changes at their next heartbeat.
    """

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(WORKERS_GROUP, message)
        except Exception:
            logger.warning("could not tell the workers %s; they catch up on their heartbeat", message["type"])

    transaction.on_commit(send)


def announce_settings(version: int) -> None:
    notify_workers({"type": "settings.changed", "version": version})


def announce_recipients() -> None:
    notify_workers({"type": "recipients.changed"})


def restore_settings(entry: AuditEntry, which: str, actor: str) -> BridgeSettings:
    """Make the settings what they were ``before`` or ``after`` the change ``entry`` recorded, as a new version.

    Raises ValueError for an entry that is not a settings change, and ValidationError (nothing saved) when an old
    value is no longer valid. Knobs added since the entry keep their current values.
    """
    if entry.action != "settings.change" or which not in ("before", "after"):
        raise ValueError("only a settings change can be restored, to its 'before' or 'after' values")
    recorded = getattr(entry, which) or {}
    known = {f.name for f in BridgeSettings._meta.concrete_fields} - {"id", "version", "updated_at"}
    values = {name: value for name, value in recorded.items() if name in known}
    with transaction.atomic():
        restored = bump_settings(
            actor,
            note=f"restored version {recorded.get('version', '?')} (audit entry {entry.pk}, {which})",
            **values,
        )
        announce_settings(restored.version)
    return restored


def alive_workers():
    """Workers whose heartbeat is recent, newest first."""
    return Worker.objects.filter(heartbeat_at__gte=timezone.now() - WORKER_STALE)


def send_test_message(recipient: Recipient, actor: str) -> str | None:
    """Ask one live worker to send a test message to ``recipient``; its name, or None when no worker is alive.

    One worker, not the group: every worker would send its own copy.
    """
    worker = alive_workers().exclude(control_channel="").first()
    if worker is None:
        return None
    text = f"Test message from CCTelegram, sent from the admin by {actor}."
    async_to_sync(get_channel_layer().send)(
        worker.control_channel, {"type": "test.send", "chat_id": recipient.chat_id, "text": text}
    )
    AuditEntry.record(actor, "recipient.test", recipient, detail=f"asked worker {worker.name}")
    return worker.name


# --- retries and dead letters ----------------------------------------------------------------------------------
def on_queue(step: Callable, *args, **kwargs):
    """Run ``await step(queue, ...)`` from synchronous code (the admin, commands) on a queue of its own."""
    from bridge.queue import get_queue

    async def run():
        queue = get_queue()
        try:
            return await step(queue, *args, **kwargs)
        finally:
            await queue.close()

    return async_to_sync(run)()


@dataclass
class Replayed:
    letters: int = 0  # queue entries taken out of dead letters
    events: int = 0  # events whose dead deliveries were sent again


def _events_with_dead_deliveries(event_pks: list[int] | None) -> list[int]:
    rows = Delivery.objects.filter(status=Delivery.Status.DEAD)
    if event_pks is not None:
        rows = rows.filter(event_id__in=event_pks)
    return sorted(set(rows.values_list("event_id", flat=True)))


def _reopen_dead(event_pks: list[int]) -> None:
    with transaction.atomic():
        Delivery.objects.filter(event_id__in=event_pks, status=Delivery.Status.DEAD).update(
            status=Delivery.Status.QUEUED, attempts=0, last_error=""
        )
        Event.objects.filter(pk__in=event_pks).update(status=Event.Status.QUEUED)


async def replay_dead_letters(
    queue: DurableQueue,
    event_pks: Iterable[int] | None = None,
    *,
    batch: int = 100,
    limit: int = 100_000,
    progress: Callable[[int, int], None] | None = None,
) -> Replayed:
    """Send dead letters again: queue entries the queue gave up on, and deliveries that went dead.

    Only those of ``event_pks`` when given. ``progress(done, total)`` is called after each batch. An event whose
    queue entry is itself a dead letter has its dead deliveries reopened and travels with that entry, so nothing
    is queued twice.
    """
    wanted = None if event_pks is None else set(event_pks)
    letters = await queue.dead_letters(limit)
    if wanted is not None:
        letters = [letter for letter in letters if letter.event_pk in wanted]
    dead_events = await sync_to_async(_events_with_dead_deliveries)(
        None if wanted is None else sorted(wanted)
    )
    riding = {letter.event_pk for letter in letters} & set(dead_events)
    if riding:
        await sync_to_async(_reopen_dead)(sorted(riding))
    others = [pk for pk in dead_events if pk not in riding]
    total, done = len(letters) + len(others), 0
    summary = Replayed()
    if progress:
        progress(0, total)
    for start in range(0, len(letters), batch):
        chunk = letters[start : start + batch]
        summary.letters += await queue.requeue_dead([letter.entry_id for letter in chunk])
        done += len(chunk)
        if progress:
            progress(done, total)
    for start in range(0, len(others), batch):
        chunk = others[start : start + batch]
        summary.events += await requeue_events(queue, chunk)
        done += len(chunk)
        if progress:
            progress(done, total)
    return summary


# --- purging history -------------------------------------------------------------------------------------------
@dataclass
class Purge:
    events: int = 0
    deliveries: int = 0
    responses: int = 0


def _old(days: int):
    cutoff = timezone.now() - timedelta(days=days)
    # Only finished events: a queued one may still be sent, and its queue entry would go with it.
    events = Event.objects.filter(received_at__lt=cutoff, status__in=(Event.Status.DONE, Event.Status.FAILED))
    return cutoff, events


def purge_preview(days: int) -> Purge:
    """What ``purge_history(days)`` would delete."""
    cutoff, events = _old(days)
    return Purge(
        events=events.count(),
        deliveries=Delivery.objects.filter(event__in=events).count(),
        responses=Response.objects.filter(created_at__lt=cutoff).count(),
    )


def purge_history(days: int, actor: str) -> Purge:
    """Delete finished events older than ``days`` (with their deliveries, approvals and queue leftovers), and
    responses and worker samples as old; audit entries are kept. Raises ValueError for days < 1."""
    if days < 1:
        raise ValueError("days must be at least 1")
    cutoff, events = _old(days)
    purged = Purge()
    while pks := list(events.values_list("pk", flat=True)[:PURGE_BATCH]):
        with transaction.atomic():
            purged.deliveries += Delivery.objects.filter(event_id__in=pks).delete()[0]
            purged.events += Event.objects.filter(pk__in=pks).delete()[1].get("bridge.Event", 0)
    purged.responses = Response.objects.filter(created_at__lt=cutoff).delete()[0]
    WorkerSample.objects.filter(at__lt=cutoff).delete()
    AuditEntry.record(
        actor,
        "history.purge",
        detail=f"older than {days} days: {purged.events} events, {purged.deliveries} deliveries, "
        f"{purged.responses} responses",
    )
    return purged
