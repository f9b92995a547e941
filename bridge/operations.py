"""Operator actions, shared by the admin, management commands and the control channel."""

from __future__ import annotations

import time
from collections.abc import Iterable

from asgiref.sync import sync_to_async
from django.db import transaction

from bridge.events.schema import Event as TypedEvent
from bridge.models import Delivery, Event
from bridge.queue.base import DurableQueue, NewEntry

RETRYABLE = (Delivery.Status.FAILED, Delivery.Status.DEAD)


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
            payload=_typed(row).to_json(),
        )
        for row in events
    ]
    await queue.enqueue_batch(entries)
    return len(entries)


async def requeue_event(queue: DurableQueue, event_pk: int) -> int:
    return await requeue_events(queue, [event_pk])


def _typed(row: Event) -> TypedEvent:
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
