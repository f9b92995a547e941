"""The MCP tools: the original server's names, arguments and result shapes, plus wait_for_approval and
get_delivery_status.

Each tool is a thin async function: its signature (typed by bridge.mcp.models) is the schema agents see and the
validation the SDK applies; its docstring is the description. The work lives in the modules named below, imported
on first use so that the server answers `initialize` before any of them is loaded. Database work runs on Django's
one thread for synchronous code, the same thread the event store uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations

from bridge.mcp.models import (
    Category,
    Description,
    DurationMs,
    EventData,
    EventId,
    EventType,
    FilePath,
    Limit,
    MessageText,
    Metric,
    OlderThanHours,
    Options,
    RequiredTaskId,
    Severity,
    SinceMinutes,
    Source,
    TaskId,
    TimeoutSeconds,
    Title,
)
from bridge.mcp.services import services

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

Result = dict[str, Any]
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
SENDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
DELETES = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)


# --- sending -----------------------------------------------------------------------------------------------------
async def _send(tool: str, given: dict[str, Any]) -> Result:
    """What the send tool ``tool`` does, called with ``given``: its locals on entry (its context among them)."""
    from bridge.mcp import sending

    arguments = {name: value for name, value in given.items() if name != "ctx"}
    return await sending.send(services(given["ctx"]), tool, **arguments)


async def send_telegram_event(
    ctx: Context,
    type: EventType,
    title: Title,
    description: Description = "",
    task_id: TaskId | None = None,
    source: Source = "claude-code",
    data: EventData | None = None,
) -> Result:
    """Send a structured event (any of the 47 types) to the owner's Telegram. Durably queued when this returns:
    {success, event_id, message}."""
    return await _send("send_telegram_event", locals())


async def send_telegram_message(ctx: Context, message: MessageText, source: Source = "claude-code") -> Result:
    """Send a plain text message (an info notification) to the owner's Telegram: {success, event_id, message}."""
    return await _send("send_telegram_message", locals())


async def send_task_completion(
    ctx: Context,
    task_id: RequiredTaskId,
    title: Title,
    results: Description | None = None,
    files_affected: list[FilePath] | None = None,
    duration_ms: DurationMs | None = None,
) -> Result:
    """Report a finished task with its results, the files it touched and how long it took."""
    return await _send("send_task_completion", locals())


async def send_performance_alert(
    ctx: Context, title: Title, current_value: Metric, threshold: Metric, severity: Severity = "medium"
) -> Result:
    """Alert that a metric crossed its threshold (e.g. "Memory usage high", 912, 800, "high")."""
    return await _send("send_performance_alert", locals())


async def send_approval_request(
    ctx: Context,
    title: Title,
    description: Description,
    options: Options | None = None,
    task_id: TaskId | None = None,
) -> Result:
    """Ask the owner to decide, with one button per option (default Approve / Deny). Returns the event_id to
    pass to wait_for_approval."""
    return await _send("send_approval_request", locals())


async def wait_for_approval(
    event_id: EventId | None = None, task_id: TaskId | None = None, timeout_seconds: TimeoutSeconds = 300
) -> Result:
    """Wait until the owner decides an approval request (by the event_id send_approval_request returned, or
    its task_id): {decision: approved|denied|answered|expired|pending, option, decided_by, decided_at,
    timed_out, ...}. pending with timed_out true means nobody answered yet: call again to keep waiting."""
    from bridge.mcp import decisions

    return await decisions.wait(event_id, task_id, timeout_seconds)


async def get_delivery_status(event_id: EventId) -> Result:
    """Where an event stands, per recipient: queued, sending, sent, failed, dead, suppressed or digested."""
    from bridge.mcp import decisions

    return await sync_to_async(decisions.delivery_status)(event_id)


# --- responses ---------------------------------------------------------------------------------------------------
async def get_telegram_responses(limit: Limit = 10) -> Result:
    """The owner's latest answers (button presses and text replies), newest first: {count, total, responses}."""
    from bridge.mcp import responses

    return await sync_to_async(responses.recent)(limit)


async def process_pending_responses(since_minutes: SinceMinutes = 10) -> Result:
    """Approvals and denials of the last N minutes: {summary, actionable_responses, recommendations}."""
    from bridge.mcp import responses

    return await sync_to_async(responses.pending_actions)(since_minutes)


async def clear_old_responses(older_than_hours: OlderThanHours = 24) -> Result:
    """Delete response files (and their records) older than N hours: {deleted_count, message}."""
    from bridge.mcp import responses

    return await sync_to_async(responses.clear_old)(older_than_hours)


# --- status and modes --------------------------------------------------------------------------------------------
async def get_bridge_status(ctx: Context) -> Result:
    """Whether the bridge runs, its health and figures: {running, health, mode, metrics: {uptime_seconds,
    events_processed, telegram_messages_sent, error_count, memory_usage_mb, cpu_usage_percent}, ...}."""
    from bridge.mcp import status

    managed = services(ctx).bridge.find()
    return await sync_to_async(status.bridge_status)(managed.pid if managed else None)


async def list_event_types(category: Category | None = None) -> Result:
    """The event types with their category and emoji, optionally of one category: {count, event_types}."""
    from bridge.mcp import status

    return status.event_types(category)


async def switch_to_nomad_mode() -> Result:
    """Nomad mode: everything is delivered and a text reply is answered with a short menu (working remotely)."""
    return await _switch("nomad")


async def switch_to_local_mode() -> Result:
    """Local mode (the default): everything is delivered, a text reply is acknowledged with ⚡."""
    return await _switch("local")


async def switch_to_mute_mode() -> Result:
    """Mute mode: only approvals and critical alerts are sent; the rest is recorded, not delivered."""
    return await _switch("muted")


async def _switch(mode: str) -> Result:
    from bridge.mcp import status
    from bridge.models import Mode

    return await sync_to_async(status.switch_mode)(Mode(mode))


# --- the bridge process ------------------------------------------------------------------------------------------
async def start_bridge(ctx: Context) -> Result:
    """Start the bridge (`manage.py run_bridge`) unless one is running: {success, message, pid}."""
    return await services(ctx).bridge.start()


async def stop_bridge(ctx: Context) -> Result:
    """Stop the bridge this server started (SIGTERM, then SIGKILL after a grace period): {success, message}."""
    return await services(ctx).bridge.stop()


async def restart_bridge(ctx: Context) -> Result:
    """Stop and start the bridge: {success, message, pid}."""
    return await services(ctx).bridge.restart()


async def ensure_bridge_running(ctx: Context) -> Result:
    """Start the bridge if no bridge is running: {success, message, action: already_running|started|failed}."""
    return await services(ctx).bridge.ensure()


async def check_bridge_process(ctx: Context) -> Result:
    """Whether the bridge this server manages is running: {running, pid, message, other_bridges}."""
    return await services(ctx).bridge.check()


TOOLS = (
    (send_telegram_event, SENDS),
    (send_telegram_message, SENDS),
    (send_task_completion, SENDS),
    (send_performance_alert, SENDS),
    (send_approval_request, SENDS),
    (wait_for_approval, READ_ONLY),
    (get_delivery_status, READ_ONLY),
    (get_telegram_responses, READ_ONLY),
    (process_pending_responses, READ_ONLY),
    (clear_old_responses, DELETES),
    (get_bridge_status, READ_ONLY),
    (list_event_types, READ_ONLY),
    (switch_to_nomad_mode, CHANGES),
    (switch_to_local_mode, CHANGES),
    (switch_to_mute_mode, CHANGES),
    (start_bridge, CHANGES),
    (stop_bridge, DELETES),
    (restart_bridge, CHANGES),
    (ensure_bridge_running, CHANGES),
    (check_bridge_process, READ_ONLY),
)


def register(server: MCPServer) -> None:
    """Add every tool. Results are JSON text (the original's form), so no output schema is declared: a client
    would validate every result against it, ~0.1 ms a call for nothing the agent reads."""
    for fn, hints in TOOLS:
        server.add_tool(fn, annotations=hints, structured_output=False)
