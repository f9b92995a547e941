"""The send lane: a send tool called over stdio, answered on the thread that reads the wire, synchronously, from
the line read to the line written.

The same call through the SDK's handler on the event loop crosses threads twice more: to the database thread and
back (~0.1 ms each way on a small VM, measured), and with Redis a round trip through the asyncio client (~0.2 ms
against ~0.06 ms for the synchronous one). Here the thread that read the line validates it with the tool's own
argument model, builds the event the tool would build (bridge.mcp.sending), stores it with
``EventStore.store_new_sync`` on its own database connection (the row and the queue entry, durable before the
answer goes out, as on the SDK's path) and serializes the answer as the SDK does.

Only the plain success is answered here. Anything else (an argument the tool does not take or that fails its
model, an event the parser refuses, a duplicate event id, a store that failed, a client over its rate limit, a bug)
makes ``answer`` return None, and the line goes to the SDK, whose answer is then the one the client gets: every
refusal is worded in one place (bridge.mcp.server). Nothing was written in those cases but one, a Redis queue that
failed after the event's row was committed, as on the SDK's own path; the SDK's attempt then gets its own answer.
A refused call counts twice against the rate limit (here and in the SDK), which only matters to a client already
sending nonsense.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, IntegrityError
from pydantic import ValidationError

from bridge.events.limits import RejectedEvent
from bridge.events.parse import parse_mapping
from bridge.mcp import sending
from bridge.queue import QueueError

if TYPE_CHECKING:
    from bridge.mcp.server import CCTelegramServer

logger = logging.getLogger(__name__)


class SendLane:
    def __init__(self, server: CCTelegramServer, tools: frozenset[str]) -> None:
        """``tools``: the send tools (of bridge.mcp.sending.SEND_TOOLS) answered here."""
        self._server = server
        self._tools = tools & sending.SEND_TOOLS.keys()

    def answer(self, message: dict[str, Any], protocol_version: str) -> dict[str, Any] | None:
        """The JSON-RPC response to ``message``, a ``tools/call`` request, or None: the SDK's to answer."""
        try:
            return self._answer(message, protocol_version)
        except Exception:  # a bug: the SDK answers, and this thread keeps reading the wire
            logger.exception("the send lane failed on a %s call; the SDK answers it", message.get("method"))
            return None

    def _answer(self, message: dict[str, Any], protocol_version: str) -> dict[str, Any] | None:
        from mcp_types.methods import serialize_server_result

        from bridge.mcp.server import client_of

        params = message.get("params")
        services = self._server.running_services
        if not isinstance(params, dict) or services is None or params.keys() - {"name", "arguments", "_meta"}:
            return None
        name, arguments = params.get("name"), params.get("arguments") or {}
        tool = self._server._tool_manager.get_tool(name) if name in self._tools else None
        if tool is None or not isinstance(arguments, dict):
            return None
        if not arguments.keys() <= tool.parameters.get("properties", {}).keys():
            return None
        if self._server.limiter.allow(client_of(None)) is not None:
            return None
        try:
            fields, what, _ = sending.send_fields(name, tool.fn_metadata.validate_arguments(arguments))
            event = parse_mapping(
                fields, origin="mcp", raw_digest=uuid.uuid4().hex, limits=services.limits_sync()
            )
            (stored,) = services.store().store_new_sync([event])
        except (ValidationError, RejectedEvent, IntegrityError, NotImplementedError):
            return None
        except (QueueError, DatabaseError) as exc:
            logger.warning("the send lane could not store a %s event (the SDK tries again): %s", name, exc)
            return None
        result = tool.fn_metadata.convert_result(sending.queued(services, event, stored, what))
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        return {
            "jsonrpc": "2.0",
            "id": message["id"],
            "result": serialize_server_result("tools/call", protocol_version, dumped),
        }
