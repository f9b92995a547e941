"""The answer to ``initialize``, known without loading the MCP SDK, so the stdio server answers it at once.

Importing the SDK takes ~0.6 s of a cold start (pydantic models for the whole protocol, the HTTP stack); an agent
waits for ``initialize`` before anything else. bridge.mcp.frontend answers it from here, then loads the SDK and
replays the same request to it. The answer is what the SDK answers for our server (the same capabilities,
server info, instructions and version negotiation); tests/test_mcp.py checks that they agree for every protocol
version, so a change on either side cannot drift unnoticed. Nothing here imports the SDK or Django models.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

NAME = "cctelegram"
TITLE = "CCTelegram"
INSTRUCTIONS = (
    "CCTelegram sends your reports to your owner's Telegram and brings their answers back. Use "
    "send_telegram_event (or the send_* shortcuts) to report progress, results and failures; "
    "send_approval_request then wait_for_approval to ask before risky steps. A send returns once the event is "
    "durably queued. A refused call answers {success: false, error: {code, field, message}}: fix that argument."
)
# The protocol versions reached through the initialize handshake (mcp_types.version.HANDSHAKE_PROTOCOL_VERSIONS,
# which costs 0.2 s to import); a client asking for another one is offered the latest.
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
# What the SDK announces for a server with tools, resources and (no) prompts.
CAPABILITIES = {
    "prompts": {"listChanged": False},
    "resources": {"listChanged": False, "subscribe": False},
    "tools": {"listChanged": False},
}


@cache
def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("cctelegram")
    except PackageNotFoundError:
        return "0"


def negotiated(params: Mapping[str, Any]) -> str | None:
    """The protocol version to answer an ``initialize`` with these params, or None when the params are not a
    plain, well-formed handshake (the SDK then answers, errors included)."""
    requested = params.get("protocolVersion")
    client = params.get("clientInfo")
    if not isinstance(requested, str) or not isinstance(params.get("capabilities"), dict):
        return None
    if not isinstance(client, dict) or not isinstance(client.get("name"), str):
        return None
    if not isinstance(client.get("version"), str) or "_meta" in params:
        return None
    return requested if requested in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]


def initialize_result(protocol_version: str) -> dict[str, Any]:
    return {
        "capabilities": CAPABILITIES,
        "instructions": INSTRUCTIONS,
        "protocolVersion": protocol_version,
        "serverInfo": {"name": NAME, "title": TITLE, "version": version()},
    }
