"""What the MCP tools answer: the original's result shapes on success, one structured error shape on refusal.

A tool returns a plain dict, which the SDK sends as JSON text, as the original server did. A refusal (a bad
argument, an event the parser rejects, a rate limit, storage down) is a `ToolProblem`; the server answers it as
an MCP tool error (``isError: true``) whose text is JSON an agent can act on:

    {"success": false, "error": {"code": "invalid_argument", "field": "title", "message": "..."}}

``field`` names the argument at fault ("data.exit_code" for a nested one) and is absent when no single argument
is; ``retry_after`` (seconds) is present when waiting would help.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent

if TYPE_CHECKING:
    from pydantic import ValidationError

    from bridge.events.limits import RejectedEvent


class ToolProblem(ToolError):
    """A refusal to report to the agent (an anticipated ToolError, in the SDK's terms).

    ``code`` is a stable slug: invalid_argument, not_found, rate_limited, storage_unavailable, or the parser's
    code for a refused event (too_long, bad_data, ...; bridge.events.limits.CODES).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid_argument",
        field: str | None = None,
        retry_after: float | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.retry_after = retry_after
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        if self.retry_after is not None:
            error["retry_after"] = round(self.retry_after, 3)
        if self.details:
            error["details"] = self.details
        return {"success": False, "error": error}

    def as_result(self) -> CallToolResult:
        body = self.as_dict()
        text = json.dumps(body, ensure_ascii=False, indent=2)
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=body, is_error=True
        )


def from_validation_error(exc: ValidationError) -> ToolProblem:
    """The SDK's argument validation failure, naming the first argument at fault (and listing all of them)."""
    details = [{"field": dotted(err["loc"]), "message": err["msg"]} for err in exc.errors(include_url=False)]
    first = details[0]
    return ToolProblem(
        f"{first['field']}: {first['message']}",
        field=first["field"],
        details=details if len(details) > 1 else None,
    )


def from_rejected_event(exc: RejectedEvent, renamed: dict[str, str] | None = None) -> ToolProblem:
    """A refusal of the event parser, naming the tool argument behind the event field it names.

    ``renamed`` maps event fields to the tool's arguments where they differ (send_telegram_message's
    ``message`` becomes the event's description).
    """
    field = _field_in(exc.reason)
    if field is not None and renamed:
        head, dot, rest = field.partition(".")
        field = renamed.get(head, head) + dot + rest
    return ToolProblem(exc.reason, code=exc.code, field=field)


def unknown_arguments(names: Sequence[str], accepted: Sequence[str]) -> ToolProblem:
    takes = ", ".join(accepted) if accepted else "no arguments"
    return ToolProblem(
        f"unknown argument {names[0]!r}; this tool takes: {takes}", field=names[0], code="invalid_argument"
    )


def dotted(loc: Sequence[str | int]) -> str:
    """("data", "tags", 2) -> "data.tags[2]"; the SDK's "field_" prefix for shadowing names is dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part).removeprefix("field_")
    return out or "arguments"


# "field 'title' is ..." (parse) or "data.exit_code: expected ..." (data checks and plain_json).
_FIELD_QUOTED = re.compile(r"\bfield '([a-z_]+)'")
_FIELD_PATH = re.compile(r"^([a-z_]+(?:\.[A-Za-z0-9_]+|\[\d+\])*):")


def _field_in(reason: str) -> str | None:
    match = _FIELD_QUOTED.search(reason) or _FIELD_PATH.match(reason)
    return match.group(1) if match else None
