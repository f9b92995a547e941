"""The typed inputs of the MCP tools: one annotated type per kind of argument, shared by every tool that takes it.

The SDK builds each tool's pydantic argument model (and the JSON schema agents see) from these annotations, so
an argument is checked once, before a tool runs; a refusal names the argument (see bridge.mcp.results). Limits
match what the event parser and the database accept (bridge.events.limits.Limits), so a value that passes here
is not refused further in. Titles are free text: emoji, colons and quotes are welcome.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from bridge.events.limits import DEFAULT_LIMITS

EventType = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9_]{1,64}$"),
    Field(
        description="Event type, e.g. task_completion, build_failed, approval_request (list_event_types has all "
        "47); an unknown type is delivered as such, marked ❓."
    ),
]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=DEFAULT_LIMITS.max_title),
    Field(description="Short title shown in bold; emoji and colons are fine."),
]
Description = Annotated[
    str, Field(max_length=DEFAULT_LIMITS.max_description, description="Longer text shown under the title.")
]
MessageText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=DEFAULT_LIMITS.max_description),
    Field(description="Message text to send."),
]
Source = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=DEFAULT_LIMITS.max_source),
    Field(description='Who sends it (defaults to "claude-code").'),
]
TaskId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=DEFAULT_LIMITS.max_task_id),
    Field(coerce_numbers_to_str=True, description="Task identifier; numbers are accepted."),
]
RequiredTaskId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=DEFAULT_LIMITS.max_task_id),
    Field(coerce_numbers_to_str=True, description="Task identifier; numbers are accepted."),
]
EventId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=DEFAULT_LIMITS.max_event_id),
    Field(description="The event_id a send tool returned."),
]
EventData = Annotated[
    dict[str, Any],
    Field(
        description="Extra fields shown with the event: status, results, files_affected, duration_ms, "
        "error_message, severity, priority (low/normal/high/urgent), url, tags, ... (see EVENT_TYPES.md)."
    ),
]
Severity = Annotated[
    Literal["low", "medium", "high", "critical"], Field(description="Alert severity; critical is sent first.")
]
Metric = Annotated[float, Field(allow_inf_nan=False)]
DurationMs = Annotated[float, Field(ge=0, allow_inf_nan=False, description="How long the task took (ms).")]
FilePath = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Option = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Options = Annotated[
    list[Option],
    Field(min_length=1, max_length=10, description='Button labels, 1-10 (default ["Approve", "Deny"]).'),
]
Limit = Annotated[int, Field(ge=1, le=100, description="How many responses at most (1-100).")]
SinceMinutes = Annotated[
    float, Field(gt=0, le=1440, allow_inf_nan=False, description="Look back this many minutes (up to 1440).")
]
OlderThanHours = Annotated[
    float,
    Field(ge=0, le=87_600, allow_inf_nan=False, description="Delete what is older than this many hours."),
]
TimeoutSeconds = Annotated[
    float,
    Field(
        ge=0, le=3600, allow_inf_nan=False, description="How long to wait for the decision (up to 3600 s)."
    ),
]
Category = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    Field(description='Category filter, e.g. "build_and_test" or "build"; matches part of the name.'),
]
