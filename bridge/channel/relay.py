"""Permission relay: Claude Code's permission prompt answered with the Allow / Deny buttons in Telegram.

A ``notifications/claude/channel/permission_request`` becomes an approval_request event, submitted like any other
(bridge.ingest.submit): the bridge sends it to the approvers with Allow / Deny buttons, the first valid press
decides it (bridge.replies.approvals) and pokes the session that asked (`wake_asker`), which reads the decision
(`verdicts`) and answers Claude Code with ``notifications/claude/channel/permission``. The poke is a hint: the
decision is read from the database, so no other process on the machine can make up a verdict. An approval that expires sends no verdict: Claude
Code's own prompt in the terminal stays open, as with the hook. Only the buttons decide: a typed "approve" is an
ordinary channel message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError
from pydantic import BaseModel, ConfigDict, Field

from bridge.channel import wake
from bridge.ingest.submit import submit
from bridge.models import Approval

if TYPE_CHECKING:
    from bridge.events.schema import Event
    from bridge.ingest.store import EventStore

SOURCE = "claude-code-channel"
REQUEST_METHOD = "notifications/claude/channel/permission_request"
VERDICT_METHOD = "notifications/claude/channel/permission"
OPTIONS = ["Allow", "Deny"]
MAX_PREVIEW = 2000
logger = logging.getLogger(__name__)
_BEHAVIOR = {Approval.Status.APPROVED: "allow", Approval.Status.DENIED: "deny"}


class PermissionRequest(BaseModel):
    """The request as Claude Code sends it (snake_case on the wire); extra fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    request_id: str = Field(min_length=1, max_length=100)
    tool_name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=4000)
    input_preview: str = ""


def approval_fields(request: PermissionRequest, session_name: str) -> dict[str, Any]:
    """The approval_request event for ``request`` (the formatter escapes every field)."""
    preview = request.input_preview[:MAX_PREVIEW]
    description = request.description or f"Claude wants to run {request.tool_name or 'a tool'}."
    if preview:
        description = f"{description}\n\n{preview}"
    return {
        "type": "approval_request",
        "title": f"Permission: {request.tool_name or 'tool'} ({session_name})"[:200],
        "description": description,
        "source": SOURCE,
        "data": {
            "approval_prompt": request.description,
            "options": OPTIONS,
            "requires_response": True,
            "metadata": {
                "channel_session": session_name,
                "channel_request_id": request.request_id,
                "tool_name": request.tool_name,
                "input_preview": preview,
            },
        },
    }


async def ask(store: EventStore, request: PermissionRequest, session_name: str) -> str:
    """Submit the approval; returns its event_id. Raises RejectedEvent, QueueError or DatabaseError."""
    event, _ = await submit(store, approval_fields(request, session_name), origin="mcp")
    return event.event_id


def verdict(event_id: str) -> str | None:
    """ "allow" or "deny" once decided, "expired" when it ran out, None while pending (or not yet stored)."""
    status = Approval.objects.filter(event__event_id=event_id).values_list("status", flat=True).first()
    if status is None or status == Approval.Status.PENDING:
        return None
    return _BEHAVIOR.get(status, "expired")


def verdicts(event_ids: list[str]) -> dict[str, str]:
    """`verdict` for many at once (one query): only those that are closed."""
    rows = Approval.objects.filter(event__event_id__in=event_ids).exclude(status=Approval.Status.PENDING)
    return {
        eid: _BEHAVIOR.get(status, "expired") for eid, status in rows.values_list("event__event_id", "status")
    }


def wake_asker(event: Event) -> None:
    """Poke the channel session that asked for ``event`` (a decided permission approval) so it sends the
    verdict now rather than at its next poll; nothing for other approvals. Never raises: a poke is a hint."""
    from bridge.channel.inbox import live_sessions

    metadata = event.data.get("metadata") if isinstance(event.data, dict) else None
    name = metadata.get("channel_session") if isinstance(metadata, dict) else None
    if not name or event.source != SOURCE:
        return
    try:
        ports = list(
            live_sessions().filter(name=name).exclude(wake_port=None).values_list("wake_port", flat=True)
        )
    except DatabaseError as error:
        logger.warning("could not look up channel session %s to wake it: %s", name, error)
        return
    wake.ring(ports)
