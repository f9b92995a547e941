"""Events that do not come from files (MCP tools, the shell): the same parse and store path, durable on return."""

from __future__ import annotations

import uuid
from typing import Any

from bridge.events.limits import DEFAULT_LIMITS, Limits
from bridge.events.parse import parse_mapping
from bridge.events.schema import Event
from bridge.ingest.store import EventStore, Stored


async def submit(
    store: EventStore, fields: dict[str, Any], *, origin: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[Event, Stored]:
    """Validate ``fields`` as an event (within ``limits``) and store it; raises RejectedEvent with a reason for bad
    input.

    Unlike a file, each call is a new event even when its text repeats ("tests passed" twice is two events), so
    the default event_id is random rather than derived from the content; an explicit event_id still deduplicates.
    """
    event = parse_mapping(fields, origin=origin, raw_digest=uuid.uuid4().hex, limits=limits)
    (stored,) = await store.store([event])
    return event, stored
