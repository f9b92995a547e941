"""The live delivery feed as the dashboard shows it: one item per delivery outcome.

Items are plain dicts (they cross the channel layer): event_id, type, title, chat_id, status, latency_ms, error,
at (epoch seconds). Every string in them comes from an agent and is shown as text, never as markup.
"""

from __future__ import annotations

import time

from bridge.models import Delivery, Event

RECENT = 50


def add_titles(items: list[dict]) -> list[dict]:
    """The sender reports event ids; the feed shows titles too: one query per batch, not per item."""
    missing = {item["event_id"] for item in items if "title" not in item}
    titles = (
        dict(Event.objects.filter(event_id__in=missing).values_list("event_id", "title")) if missing else {}
    )
    now = time.time()
    for item in items:
        item.setdefault("title", titles.get(item["event_id"], ""))
        item.setdefault("at", now)
    return items


def recent(limit: int = RECENT) -> list[dict]:
    """The latest deliveries, newest first, so that a dashboard opened now is not empty."""
    rows = (
        Delivery.objects.select_related("event", "recipient")
        .exclude(status=Delivery.Status.QUEUED)
        .order_by("-created_at")[:limit]  # indexed: cheap on a large history
    )
    return [
        {
            "event_id": row.event.event_id,
            "type": row.event.type,
            "title": row.event.title,
            "chat_id": row.recipient.chat_id,
            "status": row.status,
            "latency_ms": row.latency_ms,
            "error": row.last_error[:300],
            "at": row.updated_at.timestamp(),
        }
        for row in rows
    ]
