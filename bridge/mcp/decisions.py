"""What became of an event: its approval decision (waited for) and its deliveries, per recipient.

The decision itself comes from ``bridge.replies.decisions``, which (unlike the rest of bridge.replies) does not
load python-telegram-bot: ~18 MB this process does not otherwise need.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.mcp.results import ToolProblem
from bridge.models import Delivery, Event
from bridge.replies.decisions import Decision, wait_for_decision


def _result(found: Decision, timeout: float, remaining: float) -> dict[str, Any]:
    return {
        "success": True,
        "decision": found.status,
        "option": found.option or None,
        "decided_by": found.decided_by,
        "decided_by_name": found.decided_by_name or None,
        "decided_at": found.decided_at.isoformat() if found.decided_at else None,
        "expires_at": found.expires_at.isoformat() if found.expires_at else None,
        "event_id": found.event_id,
        "task_id": found.task_id or None,
        "timed_out": found.pending,
        "waited_seconds": round(timeout - max(remaining, 0.0), 3),
    }


async def wait(event_id: str | None, task_id: str | None, timeout: float) -> dict[str, Any]:
    """Wait up to ``timeout`` seconds for the decision; the wait_for_approval result.

    ``decision`` is approved, denied, answered (another option: see ``option``), expired, or pending when the
    time ran out first (``timed_out`` says so). Raises ToolProblem when no approval_request has those ids.
    """
    if not event_id and not task_id:
        raise ToolProblem(
            "give the event_id that send_approval_request returned, or a task_id", field="event_id"
        )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found = await wait_for_decision(event_id=event_id, task_id=task_id, timeout=timeout)
    if found is None:
        field, value = ("event_id", event_id) if event_id else ("task_id", task_id)
        raise ToolProblem(f"no approval request with {field} {value!r}", field=field, code="not_found")
    return _result(found, timeout, deadline - loop.time())


def delivery_status(event_id: str) -> dict[str, Any]:
    """The get_delivery_status result: the event's state and one entry per recipient.

    Raises ToolProblem when there is no event with that id.
    """
    event = Event.objects.filter(event_id=event_id).values("pk", "type", "status", "received_at").first()
    if event is None:
        raise ToolProblem(f"no event with event_id {event_id!r}", field="event_id", code="not_found")
    rows = (
        Delivery.objects.filter(event_id=event["pk"])
        .order_by("recipient__chat_id")
        .values(
            "recipient__chat_id",
            "recipient__display_name",
            "status",
            "attempts",
            "last_error",
            "sent_at",
            "latency_ms",
            "message_ids",
        )
    )
    deliveries = [
        {
            "chat_id": row["recipient__chat_id"],
            "recipient": row["recipient__display_name"] or str(row["recipient__chat_id"]),
            "status": row["status"],
            "attempts": row["attempts"],
            "last_error": row["last_error"] or None,
            "sent_at": row["sent_at"].isoformat() if row["sent_at"] else None,
            "latency_ms": row["latency_ms"],
            "message_ids": row["message_ids"],
        }
        for row in rows
    ]
    counts: dict[str, int] = {}
    for item in deliveries:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    return {
        "success": True,
        "event_id": event_id,
        "type": event["type"],
        "event_status": event["status"],
        "received_at": event["received_at"].isoformat(),
        "deliveries": deliveries,
        "summary": counts,
    }
