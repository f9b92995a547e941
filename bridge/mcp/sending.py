"""The send tools: each builds an event the way the original server did and hands it to the ingest path.

Every event goes through ``bridge.ingest.submit`` (the parser, the Event row, the durable queue entry), so when a
send tool answers, the event is stored and queued, and downstream an MCP event is indistinguishable from an event
file (origin "mcp" aside). Unlike the original, task ids are never invented: an event without one is still
answerable (its buttons carry an unguessable ref), and ``wait_for_approval`` takes the returned event_id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError

from bridge.events.limits import RejectedEvent
from bridge.ingest.submit import submit
from bridge.mcp.results import ToolProblem, from_rejected_event
from bridge.queue import QueueError

if TYPE_CHECKING:
    from bridge.events.schema import Event
    from bridge.ingest.store import Stored
    from bridge.mcp.services import Services

logger = logging.getLogger(__name__)

DEFAULT_OPTIONS = ("Approve", "Deny")
# What the original put in every approval request's data; the bridge reads options and approval_prompt.
APPROVAL_TIMEOUT_MINUTES = 30


async def queue_event(
    services: Services, fields: dict[str, Any], what: str, renamed: dict[str, str] | None = None
) -> dict[str, Any]:
    """Store and queue one event; the original's {success, event_id, message} result.

    Raises ToolProblem: the parser's refusal (naming the argument, through ``renamed`` where the tool's argument
    has another name than the event field), or storage_unavailable when the database or queue failed.
    """
    try:
        event, stored = await submit(services.store(), fields, origin="mcp", limits=await services.limits())
    except RejectedEvent as exc:
        logger.info("refused a %s event: %s", fields.get("type"), exc.reason)
        raise from_rejected_event(exc, renamed) from None
    except (QueueError, DatabaseError) as exc:
        raise storage_problem(fields, exc) from None
    return queued(services, event, stored, what)


def storage_problem(fields: dict[str, Any], exc: Exception) -> ToolProblem:
    """The refusal of a send whose event could not be stored (the database or the queue failed)."""
    logger.warning("could not store a %s event: %s", fields.get("type"), exc)
    return ToolProblem(
        f"the event could not be stored, nothing was queued: {exc}",
        code="storage_unavailable",
        retry_after=1.0,
    )


async def send(services: Services, tool: str, **arguments: Any) -> dict[str, Any]:
    """What the send tool named ``tool`` does with its (validated) arguments."""
    fields, what, renamed = send_fields(tool, arguments)
    return await queue_event(services, fields, what, renamed)


def send_fields(tool: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, str] | None]:
    """The send tool's event fields from its arguments; what its answer calls the event; the arguments that fill
    an event field of another name."""
    build, what, renamed = SEND_TOOLS[tool]
    return build(**arguments), what, renamed


def queued(services: Services, event: Event, stored: Stored, what: str) -> dict[str, Any]:
    """The original's answer to a send, once the event is stored and queued."""
    services.stored()
    logger.debug("queued %s %s%s", event.type, event.event_id, " (duplicate)" if stored.duplicate else "")
    return {
        "success": True,
        "event_id": event.event_id,
        "message": f"{what} queued for delivery. Event ID: {event.event_id}",
    }


def event_fields(
    type: str,
    title: str,
    description: str,
    task_id: str | None,
    source: str | None,
    data: dict[str, Any] | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": type, "title": title, "description": description}
    if task_id:
        fields["task_id"] = task_id
    if source:
        fields["source"] = source
    if data:
        fields["data"] = data
    return fields


def message_fields(message: str, source: str | None) -> dict[str, Any]:
    """A plain message is an info notification, as in the original."""
    return event_fields(
        "info_notification",
        "Claude Code Message",
        message,
        None,
        source,
        {"message": message, "severity": "low"},
    )


def task_completion_fields(
    task_id: str,
    title: str,
    results: str | None,
    files_affected: list[str] | None,
    duration_ms: float | None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"status": "completed"}
    if results is not None:
        data["results"] = results
    if files_affected is not None:
        data["files_affected"] = files_affected
    if duration_ms is not None:
        data["duration_ms"] = duration_ms
    return event_fields(
        "task_completion", title, f'Task "{title}" completed successfully', task_id, None, data
    )


def performance_alert_fields(
    title: str, current_value: float, threshold: float, severity: str
) -> dict[str, Any]:
    data = {
        "current_value": current_value,
        "threshold": threshold,
        "severity": severity,
        "error_message": f"{title} is {current_value:g}, which exceeds threshold of {threshold:g}",
    }
    return event_fields(
        "performance_alert", title, f"Performance threshold exceeded: {title}", None, None, data
    )


def approval_fields(
    title: str, description: str, options: list[str] | None, task_id: str | None
) -> dict[str, Any]:
    choices = list(options or DEFAULT_OPTIONS)
    data = {
        "approval_prompt": description,
        "options": choices,
        "requires_response": True,
        "response_options": choices,
        "timeout_minutes": APPROVAL_TIMEOUT_MINUTES,
    }
    return event_fields("approval_request", title, description, task_id, None, data)


SEND_TOOLS: dict[str, tuple[Callable[..., dict[str, Any]], str, dict[str, str] | None]] = {
    "send_telegram_event": (event_fields, "Event", None),
    "send_telegram_message": (message_fields, "Message", {"description": "message"}),
    "send_task_completion": (task_completion_fields, "Task completion", None),
    "send_performance_alert": (performance_alert_fields, "Performance alert", None),
    "send_approval_request": (approval_fields, "Approval request", None),
}
"""The send tools: the builder of each one's event fields (called with the tool's arguments by name), what its
answer calls the event, and the arguments that fill an event field of another name (for the refusal's wording)."""
