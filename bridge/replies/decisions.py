"""Where an approval stands, and waiting for it: one indexed query per look.

Free of python-telegram-bot on purpose: the MCP server process (wait_for_approval) imports it too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import sync_to_async

from bridge.models import Approval, Event

# A fresh approval is usually answered within seconds, an old one may wait long: look every 20 ms at first,
# backing off to every 500 ms.
FIRST_POLL_SECONDS, MAX_POLL_SECONDS = 0.02, 0.5


@dataclass(frozen=True, slots=True)
class Decision:
    """``status``: pending, approved, denied, answered (another option: see ``option``) or expired."""

    event_id: str
    task_id: str
    status: str
    option: str
    decided_by: int | None
    decided_by_name: str
    decided_at: datetime | None
    expires_at: datetime | None

    @property
    def pending(self) -> bool:
        return self.status == Approval.Status.PENDING


def decision_for(event_id: str | None = None, task_id: str | None = None) -> Decision | None:
    """The approval of ``event_id`` (or the latest approval_request of ``task_id``); None when there is none.

    An approval_request the bridge has not picked up yet (no Approval row) is pending. Raises ValueError when
    neither id is given.
    """
    events = Event.objects.filter(type="approval_request")
    if event_id:
        events = events.filter(event_id=event_id)
    elif task_id:
        events = events.filter(task_id=task_id)
    else:
        raise ValueError("decision_for needs an event_id or a task_id")
    fields = ("status", "option", "decided_by", "decided_by_name", "decided_at", "expires_at")
    row = (
        events.order_by("-pk").values_list("event_id", "task_id", *(f"approval__{f}" for f in fields)).first()
    )
    if row is None:
        return None
    event_id, task_id, status, option, decided_by, decided_by_name, decided_at, expires_at = row
    return Decision(
        event_id,
        task_id,
        status or Approval.Status.PENDING,
        option or "",
        decided_by,
        decided_by_name or "",
        decided_at,
        expires_at,
    )


async def wait_for_decision(
    event_id: str | None = None, task_id: str | None = None, timeout: float = 600.0
) -> Decision | None:
    """Wait up to ``timeout`` seconds for the approval to be decided or to expire.

    Returns the closed Decision; at the timeout, the still pending one (None when no approval_request has
    those ids).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = FIRST_POLL_SECONDS
    look = sync_to_async(decision_for)
    while True:
        decision = await look(event_id=event_id, task_id=task_id)
        remaining = deadline - loop.time()
        if decision is None or not decision.pending or remaining <= 0:
            return decision
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, MAX_POLL_SECONDS)
