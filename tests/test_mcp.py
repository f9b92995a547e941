"""The MCP server: every tool and resource through an in-process client, the stdio server driven by a real MCP
client, the HTTP transport and its bearer tokens, refusals naming the argument, rate limits, and the bridge
process it manages (a real `run_bridge` child and its pid file).

In-process calls use the SDK's own client (mcp.Client(server)); subprocesses get the test database through
DATABASE_URL, so everything the tests read is what the server committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx2
import mcp
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.utils import timezone
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from bridge.events.parse import parse_file
from bridge.events.schema import Event as TypedEvent
from bridge.mcp.bridge_process import PID_FILE
from bridge.mcp.ratelimit import RateLimiter
from bridge.mcp.server import build_server
from bridge.models import (
    Approval,
    AuditEntry,
    BridgeSettings,
    Delivery,
    Event,
    Recipient,
    Response,
    Worker,
)
from bridge.queue import get_queue
from tests.processes import child_database_url

# Tools work on Django's database thread and subprocesses on their own connections: both must see committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(django_settings.BASE_DIR)
MANAGE = str(BASE_DIR / "manage.py")
FIXTURES = BASE_DIR / "fixtures" / "events"
TIMEOUT = 60.0
API_KEY = "test-key-0123456789abcdef"

TOOLS = {
    "send_telegram_event", "send_telegram_message", "send_task_completion", "send_performance_alert",
    "send_approval_request", "get_telegram_responses", "process_pending_responses", "clear_old_responses",
    "get_bridge_status", "list_event_types", "start_bridge", "stop_bridge", "restart_bridge",
    "ensure_bridge_running", "check_bridge_process", "switch_to_nomad_mode", "switch_to_local_mode",
    "switch_to_mute_mode", "wait_for_approval", "get_delivery_status",
}  # fmt: skip
RESOURCES = {
    "cctelegram://event-types",
    "cctelegram://bridge-status",
    "cctelegram://responses",
    "cctelegram://event-templates",
}


# --- the small world -----------------------------------------------------------------------------------------
@pytest.fixture
async def client(folders):
    async with connected(build_server()) as c:
        yield c


@contextlib.asynccontextmanager
async def connected(server):
    """An in-process client, entered and left in a task of its own: pytest-asyncio sets a fixture up and tears it
    down in different tasks, which the client's anyio cancel scopes do not allow."""
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def hold() -> None:
        try:
            async with mcp.Client(server, raise_exceptions=True) as c:
                ready.set_result(c)
                await done.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    task = asyncio.create_task(hold())
    try:
        yield await ready
    finally:
        done.set()
        await task


async def call(client, name: str, **arguments) -> tuple[bool, dict]:
    result = await client.call_tool(name, arguments)
    return result.is_error, json.loads(result.content[0].text)


async def refused(client, name: str, **arguments) -> dict:
    is_error, body = await call(client, name, **arguments)
    assert is_error and body["success"] is False, body
    return body["error"]


async def queued_events() -> list[TypedEvent]:
    queue = get_queue()
    try:
        return [TypedEvent.from_json(item.payload) for item in await queue.claim("test-reader", 100)]
    finally:
        await queue.close()


def child_env(settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="bridge.mcp.settings",
        DATABASE_URL=child_database_url(),
        CC_TELEGRAM_HOME=str(settings.CC_TELEGRAM_HOME),
        CC_TELEGRAM_EVENTS_DIR=str(settings.CC_TELEGRAM_EVENTS_DIR),
        CC_TELEGRAM_RESPONSES_DIR=str(settings.CC_TELEGRAM_RESPONSES_DIR),
        CC_TELEGRAM_REDIS_PREFIX=settings.CC_TELEGRAM_REDIS_PREFIX,
        **extra,
    )
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def approval_for(event_id: str) -> Approval:
    event = Event.objects.get(event_id=event_id)
    return Approval.objects.create(
        event=event,
        token=event_id[:32],
        ref=f"ref{event.pk}",
        expires_at=timezone.now() + timedelta(minutes=10),
    )


# --- what is offered ---------------------------------------------------------------------------------------------
async def test_every_tool_and_resource_is_offered(client):
    assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
    assert {str(r.uri) for r in (await client.list_resources()).resources} == RESOURCES


# --- sending -------------------------------------------------------------------------------------------------------
async def test_send_telegram_event_is_durable_when_the_tool_returns(client):
    is_error, body = await call(
        client, "send_telegram_event", type="build_failed", title="Build: ❌ 3 errors", task_id=42
    )
    assert not is_error
    assert body["success"] is True and body["event_id"] in body["message"]
    row = await Event.objects.aget(event_id=body["event_id"])
    assert (row.type, row.title, row.task_id, row.origin) == (
        "build_failed",
        "Build: ❌ 3 errors",
        "42",
        "mcp",
    )
    assert [e.event_id for e in await queued_events()] == [body["event_id"]]


async def test_sends_are_followed_by_a_wal_checkpoint_off_their_path(folders):
    """On SQLite a thread of the server's checkpoints the write-ahead log after sends, so that no send pays for
    SQLite's own checkpoint inside its commit; PostgreSQL has nothing to checkpoint."""
    server = build_server()
    async with connected(server) as c:
        is_error, _ = await call(c, "send_telegram_message", message="checkpoint me")
        assert not is_error
        checkpointer = server.running_services.checkpointer
        if django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
            deadline = time.monotonic() + TIMEOUT
            while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert checkpointer.checkpoints >= 1
        else:
            assert checkpointer is None
    assert server.running_services is None  # and the thread stopped with the server


async def test_an_mcp_event_and_a_file_event_are_the_same_downstream(client):
    path = FIXTURES / "approval_request.json"
    sample = json.loads(path.read_text())
    arguments = {k: sample[k] for k in ("type", "title", "description", "task_id", "source", "data")}
    _, body = await call(client, "send_telegram_event", **arguments)
    (from_mcp,) = await queued_events()
    from_file = parse_file(path)
    same = {"event_id": "", "origin": "", "timestamp": from_file.timestamp}
    assert dataclasses.replace(from_mcp, **same) == dataclasses.replace(from_file, **same)
    assert (from_mcp.event_id, from_mcp.origin, from_mcp.priority) == (
        body["event_id"],
        "mcp",
        from_file.priority,
    )


async def test_each_call_is_a_new_event_even_with_the_same_text(client):
    first = (await call(client, "send_telegram_message", message="tests passed"))[1]["event_id"]
    second = (await call(client, "send_telegram_message", message="tests passed"))[1]["event_id"]
    assert first != second and await Event.objects.acount() == 2


async def test_send_telegram_message_is_an_info_notification(client):
    _, body = await call(client, "send_telegram_message", message="Hello: 👋 from the agent", source="ci")
    row = await Event.objects.aget(event_id=body["event_id"])
    assert (row.type, row.description, row.source) == ("info_notification", "Hello: 👋 from the agent", "ci")
    assert row.data == {"message": "Hello: 👋 from the agent", "severity": "low"}


async def test_send_task_completion_carries_results_files_and_duration(client):
    _, body = await call(
        client,
        "send_task_completion",
        task_id="T-1",
        title="Refactor: payments",
        results="3 files changed",
        files_affected=["a.py", "b.py"],
        duration_ms=1234.5,
    )
    row = await Event.objects.aget(event_id=body["event_id"])
    assert (row.type, row.task_id) == ("task_completion", "T-1")
    assert row.data == {
        "status": "completed",
        "results": "3 files changed",
        "files_affected": ["a.py", "b.py"],
        "duration_ms": 1234.5,
    }


async def test_a_critical_performance_alert_jumps_the_queue(client):
    _, body = await call(
        client,
        "send_performance_alert",
        title="Memory high",
        current_value=912,
        threshold=800,
        severity="critical",
    )
    row = await Event.objects.aget(event_id=body["event_id"])
    assert row.data["severity"] == "critical" and row.data["current_value"] == 912
    assert "912" in row.data["error_message"]
    (event,) = await queued_events()
    assert event.priority.name == "URGENT"


async def test_send_approval_request_offers_approve_and_deny_by_default(client):
    _, body = await call(client, "send_approval_request", title="Deploy?", description="Ship 2.8 to prod")
    row = await Event.objects.aget(event_id=body["event_id"])
    assert row.type == "approval_request" and row.data["options"] == ["Approve", "Deny"]
    assert row.data["approval_prompt"] == "Ship 2.8 to prod"


# --- refusals: every tool names the argument at fault -------------------------------------------------------------
BAD_ARGUMENTS = [
    ("send_telegram_event", {"type": "task_completion"}, "title"),
    ("send_telegram_event", {"type": "Not A Type", "title": "x"}, "type"),
    ("send_telegram_event", {"type": "task_completion", "title": "x" * 201}, "title"),
    ("send_telegram_event", {"type": "task_completion", "title": "   "}, "title"),
    (
        "send_telegram_event",
        {"type": "task_completion", "title": "x", "data": {"exit_code": "1"}},
        "data.exit_code",
    ),
    ("send_telegram_event", {"type": "task_completion", "title": "x", "data": "not an object"}, "data"),
    ("send_telegram_event", {"type": "task_completion", "title": "x", "descripton": "typo"}, "descripton"),
    ("send_telegram_message", {"message": ""}, "message"),
    ("send_telegram_message", {"message": "x" * 100_001}, "message"),
    ("send_task_completion", {"title": "x"}, "task_id"),
    ("send_task_completion", {"task_id": "t", "title": "x", "files_affected": "a.py"}, "files_affected"),
    ("send_task_completion", {"task_id": "t", "title": "x", "duration_ms": -1}, "duration_ms"),
    ("send_performance_alert", {"title": "x", "current_value": "high", "threshold": 1}, "current_value"),
    (
        "send_performance_alert",
        {"title": "x", "current_value": 1, "threshold": 1, "severity": "extreme"},
        "severity",
    ),
    ("send_approval_request", {"title": "x"}, "description"),
    ("send_approval_request", {"title": "x", "description": "y", "options": []}, "options"),
    (
        "send_approval_request",
        {"title": "x", "description": "y", "options": [str(i) for i in range(11)]},
        "options",
    ),
    ("send_approval_request", {"title": "x", "description": "y", "options": ["ok", ""]}, "options[1]"),
    ("get_telegram_responses", {"limit": 0}, "limit"),
    ("get_telegram_responses", {"limit": 101}, "limit"),
    ("process_pending_responses", {"since_minutes": 0}, "since_minutes"),
    ("clear_old_responses", {"older_than_hours": -1}, "older_than_hours"),
    ("get_bridge_status", {"verbose": True}, "verbose"),
    ("list_event_types", {"category": "no_such_category"}, "category"),
    ("start_bridge", {"force": True}, "force"),
    ("stop_bridge", {"force": True}, "force"),
    ("restart_bridge", {"now": True}, "now"),
    ("ensure_bridge_running", {"now": True}, "now"),
    ("check_bridge_process", {"pid": 1}, "pid"),
    ("switch_to_nomad_mode", {"mode": "x"}, "mode"),
    ("switch_to_local_mode", {"mode": "x"}, "mode"),
    ("switch_to_mute_mode", {"minutes": 30}, "minutes"),
    ("wait_for_approval", {"event_id": "e", "timeout_seconds": -1}, "timeout_seconds"),
    ("wait_for_approval", {}, "event_id"),
    ("wait_for_approval", {"event_id": "no-such-event", "timeout_seconds": 0}, "event_id"),
    ("wait_for_approval", {"task_id": "no-such-task", "timeout_seconds": 0}, "task_id"),
    ("get_delivery_status", {}, "event_id"),
    ("get_delivery_status", {"event_id": "no-such-event"}, "event_id"),
]


@pytest.mark.parametrize(("tool", "arguments", "field"), BAD_ARGUMENTS)
async def test_a_bad_argument_is_refused_naming_it(client, tool, arguments, field):
    error = await refused(client, tool, **arguments)
    assert error["field"] == field, error
    assert error["message"] and error["code"]
    assert await Event.objects.acount() == 0


def test_every_tool_has_a_bad_argument_case():
    assert {tool for tool, _, _ in BAD_ARGUMENTS} == TOOLS


# --- rate limits ---------------------------------------------------------------------------------------------------
async def test_over_the_rate_limit_a_call_is_refused_with_when_to_retry(folders, settings):
    settings.MCP_RATE_PER_SECOND, settings.MCP_RATE_BURST = 1, 3
    async with mcp.Client(build_server(), raise_exceptions=True) as c:
        for _ in range(3):
            assert not (await call(c, "list_event_types"))[0]
        error = await refused(c, "list_event_types")
    assert error["code"] == "rate_limited" and 0 < error["retry_after"] <= 1


def test_the_default_limit_lets_a_burst_of_hundreds_through_and_refills():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert all(limiter.allow("agent") is None for _ in range(500))
    assert limiter.allow("agent") == pytest.approx(1 / 50)
    assert limiter.allow("another agent") is None
    now[0] += 1.0
    assert all(limiter.allow("agent") is None for _ in range(50))
    assert limiter.allow("agent") is not None


# --- approvals and deliveries ------------------------------------------------------------------------------------
async def test_wait_for_approval_returns_the_decision_once_it_is_made(client):
    _, sent = await call(client, "send_approval_request", title="Deploy?", description="now", task_id="T-9")
    approval = await sync_to_async(approval_for)(sent["event_id"])

    async def decide_soon():
        await asyncio.sleep(0.3)
        await Approval.objects.filter(pk=approval.pk).aupdate(
            status=Approval.Status.APPROVED,
            option="Approve",
            decided_by=111,
            decided_by_name="Ann",
            decided_at=timezone.now(),
        )

    decider = asyncio.create_task(decide_soon())
    is_error, body = await call(client, "wait_for_approval", event_id=sent["event_id"], timeout_seconds=30)
    await decider
    assert not is_error
    assert (body["decision"], body["option"], body["decided_by"], body["timed_out"]) == (
        "approved",
        "Approve",
        111,
        False,
    )
    assert body["decided_at"] and body["task_id"] == "T-9"
    _, by_task = await call(client, "wait_for_approval", task_id="T-9", timeout_seconds=0)
    assert by_task["decision"] == "approved" and by_task["event_id"] == sent["event_id"]


async def test_wait_for_approval_says_pending_when_time_runs_out(client):
    _, sent = await call(client, "send_approval_request", title="Deploy?", description="now")
    _, body = await call(client, "wait_for_approval", event_id=sent["event_id"], timeout_seconds=0.2)
    assert (body["decision"], body["timed_out"]) == ("pending", True)
    assert body["waited_seconds"] >= 0.2


async def test_get_delivery_status_lists_each_recipient(client):
    _, sent = await call(client, "send_telegram_message", message="hi")

    def deliver():
        event = Event.objects.get(event_id=sent["event_id"])
        ann = Recipient.objects.create(chat_id=111, display_name="Ann")
        bob = Recipient.objects.create(chat_id=222)
        Delivery.objects.create(
            event=event, recipient=ann, status="sent", attempts=1, sent_at=timezone.now(), message_ids=[7]
        )
        Delivery.objects.create(event=event, recipient=bob, status="failed", attempts=2, last_error="429")

    await sync_to_async(deliver)()
    _, body = await call(client, "get_delivery_status", event_id=sent["event_id"])
    assert body["summary"] == {"sent": 1, "failed": 1}
    ann, bob = body["deliveries"]
    assert (ann["recipient"], ann["status"], ann["message_ids"]) == ("Ann", "sent", [7])
    assert (bob["recipient"], bob["status"], bob["last_error"], bob["attempts"]) == (
        "222",
        "failed",
        "429",
        2,
    )


# --- responses -----------------------------------------------------------------------------------------------------
def _responses(event_id: str | None = None) -> None:
    event = Event.objects.get(event_id=event_id) if event_id else None
    old = Response.objects.create(
        kind="callback_query", user_id=1, callback_data="deny_T-0", decision="denied", task_id="T-0"
    )
    Response.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=48))
    Response.objects.create(
        event=event, kind="callback_query", user_id=1, username="ann", callback_data="approve_T-1",
        decision="approved", task_id="T-1", original_message_id=9,
    )  # fmt: skip
    Response.objects.create(kind="message", user_id=1, message_text="looks good", message_type="text")


async def test_get_telegram_responses_newest_first_shaped_like_the_files(client):
    _, sent = await call(client, "send_approval_request", title="Deploy?", description="now", task_id="T-1")
    await sync_to_async(_responses)(sent["event_id"])
    _, body = await call(client, "get_telegram_responses", limit=2)
    assert (body["count"], body["total"]) == (2, 3)
    text, press = body["responses"]
    assert text["message_text"] == "looks good" and text["message_type"] == "text"
    assert press["callback_data"] == "approve_T-1" and press["response_type"] == "callback_query"
    assert (press["event_id"], press["decision"], press["original_message_id"]) == (
        sent["event_id"],
        "approved",
        9,
    )


async def test_process_pending_responses_finds_the_recent_decisions(client):
    await sync_to_async(_responses)()
    _, body = await call(client, "process_pending_responses", since_minutes=60)
    assert body["summary"]["total_recent_responses"] == 2
    assert body["summary"]["pending_approvals"] == 1 and body["summary"]["pending_denials"] == 0
    (action,) = body["actionable_responses"]
    assert (action["action"], action["task_id"]) == ("approve", "T-1")
    assert body["recommendations"]


def two_days_old_files(folder: Path, *names: str) -> None:
    two_days_ago = time.time() - 48 * 3600
    for name in names:
        (folder / name).write_text("{}")
        os.utime(folder / name, (two_days_ago, two_days_ago))


async def test_clear_old_responses_deletes_old_files_and_records_only(client, folders):
    folder = Path(folders.CC_TELEGRAM_RESPONSES_DIR)
    two_days_old_files(folder, "old.json", ".writing.json", "old.txt")
    (folder / "new.json").write_text("{}")
    await sync_to_async(_responses)()
    _, body = await call(client, "clear_old_responses", older_than_hours=24)
    assert (body["deleted_count"], body["deleted_records"]) == (1, 1)
    assert sorted(p.name for p in folder.iterdir()) == [".writing.json", "new.json", "old.txt"]
    assert await Response.objects.acount() == 2


async def test_clear_old_responses_says_how_many_files_and_records_it_deleted(client, folders):
    two_days_old_files(Path(folders.CC_TELEGRAM_RESPONSES_DIR), "a.json", "b.json", "c.json")
    await sync_to_async(_responses)()
    await sync_to_async(_responses)()  # two records older than a day, four newer
    _, body = await call(client, "clear_old_responses", older_than_hours=24)
    assert (body["deleted_count"], body["deleted_records"]) == (3, 2)
    assert body["message"] == "Cleared 3 old response files and 2 response records"
    _, again = await call(client, "clear_old_responses", older_than_hours=24)
    assert again["message"] == "Cleared 0 old response files and 0 response records"


# --- status, types, modes ------------------------------------------------------------------------------------------
async def test_get_bridge_status_reports_the_workers(client):
    now = timezone.now()
    await Worker.objects.acreate(
        name="w1", hostname=socket.gethostname(), pid=os.getpid(), started_at=now - timedelta(minutes=2),
        heartbeat_at=now, memory_mb=55.5,
    )  # fmt: skip
    _, body = await call(client, "get_bridge_status")
    assert body["running"] is True and body["workers"] == 1 and body["mode"] == "local"
    metrics = body["metrics"]
    assert metrics["uptime_seconds"] >= 120 and metrics["memory_usage_mb"] == 55.5
    assert set(metrics) >= {
        "uptime_seconds", "events_processed", "telegram_messages_sent", "error_count", "memory_usage_mb",
        "cpu_usage_percent",
    }  # fmt: skip


async def test_get_bridge_status_without_a_bridge(client):
    _, body = await call(client, "get_bridge_status")
    assert body["running"] is False and body["health"] in ("warning", "critical")
    assert body["metrics"]["last_event_time"] is None  # no event yet


async def test_get_bridge_status_gives_the_time_of_the_latest_event(client):
    first, second = [
        (await call(client, "send_telegram_message", message=text))[1]["event_id"] for text in ("one", "two")
    ]
    _, body = await call(client, "get_bridge_status")
    earlier = (await Event.objects.aget(event_id=first)).received_at
    latest = (await Event.objects.aget(event_id=second)).received_at
    assert earlier < latest
    assert datetime.fromisoformat(body["metrics"]["last_event_time"]) == latest
    assert body["last_event_time"] == body["metrics"]["last_event_time"]


@pytest.mark.parametrize(("category", "count"), [(None, 47), ("build", 8), ("Task Management", 5)])
async def test_list_event_types(client, category, count):
    arguments = {"category": category} if category else {}
    _, body = await call(client, "list_event_types", **arguments)
    assert body["count"] == count == len(body["event_types"])
    assert {"type", "category", "emoji", "description"} <= set(body["event_types"][0])


@pytest.mark.parametrize(
    ("tool", "mode"),
    [("switch_to_nomad_mode", "nomad"), ("switch_to_mute_mode", "muted"), ("switch_to_local_mode", "local")],
)
async def test_switching_mode_is_saved_and_audited(client, tool, mode):
    _, body = await call(client, tool)
    assert body["success"] is True and body["mode"] == mode and body["previous_mode"] == "local"
    assert (await sync_to_async(BridgeSettings.load)()).mode == mode
    assert await AuditEntry.objects.filter(actor="mcp", action="settings.change").aexists()


# --- resources -----------------------------------------------------------------------------------------------------
async def test_every_resource_reads_as_json(client):
    contents = {}
    for uri in RESOURCES:
        (item,) = (await client.read_resource(uri)).contents
        assert item.mime_type == "application/json"
        contents[uri] = json.loads(item.text)
    assert len(contents["cctelegram://event-types"]) == 47
    templates = contents["cctelegram://event-templates"]
    assert len(templates) == 47 and all(t["template"]["type"] == t["event_type"] for t in templates)
    assert contents["cctelegram://bridge-status"]["running"] is False
    assert contents["cctelegram://responses"] == []


async def test_the_responses_resource_shows_the_latest_20_as_get_telegram_responses_does(client):
    _, sent = await call(client, "send_approval_request", title="Deploy?", description="now", task_id="T-1")
    await sync_to_async(_responses)(sent["event_id"])

    async def shown() -> list[dict]:
        (item,) = (await client.read_resource("cctelegram://responses")).contents
        return json.loads(item.text)

    _, body = await call(client, "get_telegram_responses", limit=20)
    text, press, old = responses = await shown()
    assert responses == body["responses"]
    assert (text["message_text"], text["message_type"]) == ("looks good", "text")
    assert (press["callback_data"], press["event_id"], press["decision"], press["original_message_id"]) == (
        "approve_T-1",
        sent["event_id"],
        "approved",
        9,
    )
    assert (old["callback_data"], old["decision"]) == ("deny_T-0", "denied")
    await Response.objects.abulk_create(
        Response(kind="message", user_id=2, message_text=f"reply {i}") for i in range(21)
    )
    assert [r["message_text"] for r in await shown()] == [f"reply {i}" for i in range(20, 0, -1)]


async def test_a_template_can_be_sent_as_it_is(client):
    (item,) = (await client.read_resource("cctelegram://event-templates")).contents
    template = next(t for t in json.loads(item.text) if t["id"] == "git_commit")["template"]
    is_error, _ = await call(client, "send_telegram_event", **template)
    assert not is_error


# --- stdio ---------------------------------------------------------------------------------------------------------
async def test_the_stdio_server_serves_a_real_client(folders):
    params = StdioServerParameters(
        command=sys.executable, args=[MANAGE, "mcp_server"], env=child_env(folders), cwd=str(BASE_DIR)
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        info = await asyncio.wait_for(session.initialize(), TIMEOUT)
        assert info.server_info.name == "cctelegram"
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        result = await session.call_tool(
            "send_telegram_event",
            {"type": "task_completion", "title": "Over stdio: ✅", "data": {"status": "completed"}},
        )
        body = json.loads(result.content[0].text)
        assert not result.is_error and body["success"] is True
        # Durable on return: the row is there before the server is asked anything else.
        row = await Event.objects.aget(event_id=body["event_id"])
        assert (row.title, row.origin) == ("Over stdio: ✅", "mcp")
        bad = await session.call_tool("send_telegram_event", {"type": "task_completion", "title": ""})
        assert bad.is_error and json.loads(bad.content[0].text)["error"]["field"] == "title"


@pytest.fixture
def stderr_file(tmp_path):
    path = tmp_path / "stderr.log"
    with open(path, "wb") as handle:
        yield handle
    handle.close()


async def test_stdout_carries_only_json_rpc_even_when_tools_log(folders, stderr_file):
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "send_telegram_message", "arguments": {"message": "logged at DEBUG"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "send_telegram_event", "arguments": {"type": "x", "title": "t", "data": {"exit_code": "no"}}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "check_bridge_process", "arguments": {}}},
    ]  # fmt: skip
    child = await asyncio.create_subprocess_exec(
        sys.executable, MANAGE, "mcp_server",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr_file,
        env=child_env(folders, CC_TELEGRAM_LOG_LEVEL="DEBUG"), cwd=BASE_DIR,
    )  # fmt: skip
    child.stdin.write("".join(json.dumps(r) + "\n" for r in requests).encode())
    await child.stdin.drain()
    lines = [await asyncio.wait_for(child.stdout.readline(), TIMEOUT) for _ in range(4)]
    child.stdin.close()
    lines += (await asyncio.wait_for(child.stdout.read(), TIMEOUT)).splitlines()
    await asyncio.wait_for(child.wait(), TIMEOUT)
    messages = [json.loads(line) for line in lines]  # every line is JSON ...
    assert all(m["jsonrpc"] == "2.0" for m in messages)  # ... and JSON-RPC
    assert sorted(m["id"] for m in messages) == [1, 2, 3, 4]
    # The tools did log, on stderr: DEBUG for the queued event, INFO for the refused one.
    stderr_file.flush()
    logged = Path(stderr_file.name).read_text()
    assert "queued info_notification" in logged and "refused a x event" in logged


# --- HTTP ----------------------------------------------------------------------------------------------------------
@pytest.fixture
def http_server(folders):
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, MANAGE, "mcp_server", "--transport", "http", "--port", str(port)],
        env=child_env(folders, MCP_API_KEYS=f"other-key-0123456789abcdef,{API_KEY}"),
        cwd=BASE_DIR,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        assert child.poll() is None, "the HTTP server exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=TIMEOUT)


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key-0123456789abcdef", f"Basic {API_KEY}"])
async def test_http_refuses_a_missing_or_wrong_token(http_server, authorization):
    headers = {"Accept": "application/json, text/event-stream"}
    if authorization:
        headers["Authorization"] = authorization
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}  # fmt: skip
    async with httpx2.AsyncClient() as http:
        answer = await http.post(http_server, json=initialize, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_http_serves_a_client_with_the_right_token(http_server):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(http_server, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("send_telegram_message", {"message": "over HTTP"})
        body = json.loads(result.content[0].text)
    assert not result.is_error
    assert await Event.objects.filter(event_id=body["event_id"], origin="mcp").aexists()


@pytest.mark.parametrize("keys", [[], ["short"]])
def test_http_refuses_to_start_without_a_proper_key(settings, keys):
    settings.MCP_API_KEYS = keys
    with pytest.raises(CommandError, match="MCP_API_KEYS"):
        call_command("mcp_server", transport="http", port=free_port())


# --- the bridge process --------------------------------------------------------------------------------------------
@pytest.fixture
def bridge_env(folders, settings, monkeypatch):
    """`run_bridge` children on the test database, ingest only (no Telegram)."""
    settings.MCP_BRIDGE_ARGS = ["--no-send"]
    settings.MCP_BRIDGE_STOP_GRACE_SECONDS = 20
    monkeypatch.setenv("DATABASE_URL", child_database_url())
    monkeypatch.setenv("CC_TELEGRAM_REDIS_PREFIX", settings.CC_TELEGRAM_REDIS_PREFIX)
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)  # run_bridge needs the full settings
    return Path(folders.CC_TELEGRAM_HOME)


@pytest.fixture
def stranger():
    """A process that is not a bridge: its pid may end up in the pid file, and it must survive."""
    process = subprocess.Popen(["sleep", "120"])
    yield process
    process.kill()
    process.wait()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_start_check_and_stop_a_real_bridge(client, bridge_env):
    is_error, started = await call(client, "start_bridge")
    assert not is_error and started["success"] is True, started
    pid = started["pid"]
    assert (bridge_env / PID_FILE).read_text().strip() == str(pid)
    assert await Worker.objects.filter(pid=pid).aexists()  # it reported in before start_bridge answered
    _, checked = await call(client, "check_bridge_process")
    assert (checked["running"], checked["pid"]) == (True, pid)
    _, again = await call(client, "ensure_bridge_running")
    assert (again["action"], again["pid"]) == ("already_running", pid)
    _, status = await call(client, "get_bridge_status")
    assert status["running"] is True
    _, stopped = await call(client, "stop_bridge")
    assert stopped["success"] is True and stopped["message"] == f"Bridge stopped (pid {pid})"
    assert not alive(pid) and not (bridge_env / PID_FILE).exists()
    _, checked = await call(client, "check_bridge_process")
    assert checked["running"] is False
    assert "starting:" in (bridge_env / "bridge.log").read_text()


async def test_restart_replaces_the_bridge(client, bridge_env):
    _, started = await call(client, "ensure_bridge_running")
    assert started["action"] == "started", started
    _, restarted = await call(client, "restart_bridge")
    assert restarted["success"] is True and restarted["pid"] != started["pid"], restarted
    assert not alive(started["pid"])
    await call(client, "stop_bridge")
    assert not alive(restarted["pid"])


@pytest.fixture
def dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


async def test_a_stale_pid_file_is_cleaned_up(client, bridge_env, dead_pid):
    (bridge_env / PID_FILE).write_text(f"{dead_pid}\n")
    _, checked = await call(client, "check_bridge_process")
    assert checked["running"] is False and not (bridge_env / PID_FILE).exists()


async def test_a_pid_that_is_not_a_bridge_is_never_signalled(client, bridge_env, stranger):
    (bridge_env / PID_FILE).write_text(f"{stranger.pid}\n")
    _, stopped = await call(client, "stop_bridge")
    assert stopped == {"success": True, "message": "Bridge is not running"}
    assert stranger.poll() is None and alive(stranger.pid)
    assert not (bridge_env / PID_FILE).exists()


async def test_a_bridge_that_dies_at_start_is_reported_with_its_log(client, bridge_env, settings):
    settings.MCP_BRIDGE_ARGS = ["--no-such-option"]
    _, started = await call(client, "start_bridge")
    assert started["success"] is False
    assert "exit code 2" in started["message"] and "--no-such-option" in started["message"]
    assert not (bridge_env / PID_FILE).exists()
