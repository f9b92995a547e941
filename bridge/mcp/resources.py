"""The MCP resources: the original's four cctelegram:// documents, as JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

JSON = "application/json"
# As in the original: the responses resource shows the latest 20.
RESPONSES_SHOWN = 20


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


async def event_types() -> str:
    from bridge.mcp import status

    return _dump(status.event_types(None)["event_types"])


async def bridge_status() -> str:
    from bridge.mcp import status
    from bridge.mcp.bridge_process import BridgeProcess

    managed = BridgeProcess().find()
    return _dump(await sync_to_async(status.bridge_status)(managed.pid if managed else None))


async def recent_responses() -> str:
    from bridge.mcp import responses

    return _dump((await sync_to_async(responses.recent)(RESPONSES_SHOWN))["responses"])


async def event_templates() -> str:
    from bridge.mcp import status

    return _dump(list(status.templates()))


RESOURCES = (
    (
        "cctelegram://event-types",
        "Available Event Types",
        "Every event type with its category and emoji",
        event_types,
    ),
    (
        "cctelegram://bridge-status",
        "Bridge Status",
        "Whether the bridge runs, its health and figures",
        bridge_status,
    ),
    (
        "cctelegram://responses",
        "Recent Responses",
        "The owner's latest 20 answers from Telegram",
        recent_responses,
    ),
    (
        "cctelegram://event-templates",
        "Event Templates",
        "A ready-to-fill example event for every type",
        event_templates,
    ),
)


def register(server: MCPServer) -> None:
    for uri, name, description, fn in RESOURCES:
        server.resource(uri, name=name, description=description, mime_type=JSON)(fn)
