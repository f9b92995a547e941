"""The send lane: a send tool called over stdio, answered on the thread that reads the wire, synchronously, from
the line read to the line written.

The same call through the SDK's handler on the event loop crosses threads twice more: to the database thread and
back (~0.1 ms each way on a small VM, measured), and with Redis a round trip through the asyncio client (~0.2 ms
against ~0.06 ms for the synchronous one). Here the thread that read the line validates it with the tool's own
argument model, builds the event the tool would build (bridge.mcp.sending), stores it with
``EventStore.store_new_sync`` on its own database connection (the row and the queue entry, durable before the
answer goes out, as on the SDK's path) and serializes the answer as the SDK does.

Refusals are the SDK's: for an argument the tool does not take or that fails its model, an event the parser
refuses, a duplicate event id or a client over its rate limit, ``answer`` returns None, nothing having been
written, and the line goes to the SDK, whose answer the client gets (every refusal is worded in one place,
bridge.mcp.server; such a call counts twice against the rate limit, which only matters to a client already sending
nonsense). A store that failed is answered here, as the SDK would answer it (storage_unavailable): with Redis the
event's row may be committed already, and a second try would make a second event. Once the event is stored, the
answer is always this thread's, so that nothing is sent twice.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, IntegrityError
from mcp_types import CallToolResult, TextContent
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
        except (ValidationError, RejectedEvent):
            return None
        try:
            (stored,) = services.store().store_new_sync([event])
        except (IntegrityError, NotImplementedError):
            return None  # nothing written: the SDK's path (which looks for the event first) takes it
        except (QueueError, DatabaseError) as exc:
            # Answered here: with Redis the row may be committed already, and a second try would be a second event.
            return _answer(message, protocol_version, sending.storage_problem(fields, exc).as_result())
        # Stored: from here on the answer is this one, whatever happens (a second try would send it twice).
        body = sending.queued(services, event, stored, what)
        try:
            result = tool.fn_metadata.convert_result(body)
        except Exception:
            logger.exception("the send lane could not convert the answer to a stored %s event", name)
            text = TextContent(type="text", text=json.dumps(body, ensure_ascii=False, indent=2))
            result = CallToolResult(content=[text])
        return _answer(message, protocol_version, result)


def _answer(message: dict[str, Any], protocol_version: str, result: CallToolResult) -> dict[str, Any]:
    from mcp_types.methods import serialize_server_result

    dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return {
        "jsonrpc": "2.0",
        "id": message["id"],
        "result": serialize_server_result("tools/call", protocol_version, dumped),
    }
