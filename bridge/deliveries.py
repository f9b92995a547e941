"""Delivery records: the database side of sending, in batched, synchronous functions (run off the event loop).

The sender never trusts memory for what was sent: a delivery recorded as sent is skipped by every later attempt,
after a retry, a crash and reclaim, or a requeued dead letter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bridge.models import Delivery, Event, Recipient
from bridge.routing import Target

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


def prepare(event_pk: int, routed: list[tuple[Target, bool]]) -> list[Pending]:
    """Create the event's deliveries (once: later calls find them) and return those still to be sent."""
    with transaction.atomic():
        Delivery.objects.bulk_create(
            [
                Delivery(
                    event_id=event_pk,
                    recipient_id=target.pk,
                    status=Delivery.Status.SUPPRESSED if suppressed else Delivery.Status.QUEUED,
                )
                for target, suppressed in routed
            ],
            ignore_conflicts=True,
        )
        rows = (
            Delivery.objects.filter(event_id=event_pk)
            .exclude(status__in=TERMINAL)
            .values_list("pk", "recipient__chat_id", "recipient_id", "attempts")
        )
        return [Pending(pk, chat_id, recipient_pk, attempts) for pk, chat_id, recipient_pk, attempts in rows]


def record(outcomes: Iterable[Outcome]) -> None:
    """Write a batch of outcomes in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        for o in outcomes:
            fields = {
                "status": o.status,
                "attempts": o.attempts,
                "last_error": o.error[:2000],
                "updated_at": now,
            }
            if o.message_ids:
                fields["message_ids"] = list(o.message_ids)
            if o.status in (Delivery.Status.SENT, Delivery.Status.DIGESTED):
                fields["sent_at"] = now
                fields["latency_ms"] = o.latency_ms
            Delivery.objects.filter(pk=o.delivery_pk).update(**fields)


def finish_events(event_pks: Iterable[int]) -> None:
    """Mark events done once none of their deliveries is still open; failed when any went dead."""
    pks = list(event_pks)
    if not pks:
        return
    open_pks = set(
        Delivery.objects.filter(event_id__in=pks)
        .exclude(status__in=TERMINAL)
        .values_list("event_id", flat=True)
    )
    dead_pks = set(
        Delivery.objects.filter(event_id__in=pks, status=Delivery.Status.DEAD).values_list(
            "event_id", flat=True
        )
    )
    closed = [pk for pk in pks if pk not in open_pks]
    Event.objects.filter(pk__in=[pk for pk in closed if pk in dead_pks]).update(status=Event.Status.FAILED)
    Event.objects.filter(pk__in=[pk for pk in closed if pk not in dead_pks]).update(status=Event.Status.DONE)


def follow_migration(recipient_pk: int, new_chat_id: int) -> None:
    """A group became a supergroup: keep the recipient, with its new chat id."""
    Recipient.objects.filter(pk=recipient_pk).exclude(Q(chat_id=new_chat_id)).update(chat_id=new_chat_id)
