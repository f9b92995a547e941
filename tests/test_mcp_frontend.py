"""The stdio front end of the MCP server (bridge.mcp.frontend): initialize answered before the SDK is loaded, send
tools answered without the SDK's session machinery, and both exactly as the SDK answers them.

The front end is driven in-process over its line interface (what the pipes carry); the SDK behind it is the real
one, on the test database. tests/test_mcp.py drives the whole server as a subprocess with a real MCP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import select
import threading
import time

import pytest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

from bridge.mcp import handshake
from bridge.mcp.frontend import FAST_TOOLS, FrontEnd
from bridge.mcp.server import build_server
from bridge.mcp.stdio import BlockingWire
from bridge.models import BridgeSettings, Event
from bridge.queue import get_queue

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 30.0


class Wire:
    """The client's side of the pipes: lines in (read by the front end's thread), JSON-RPC messages out (written
    from that thread or the event loop)."""

    def __init__(self) -> None:
        self.incoming: queue.Queue[str | None] = queue.Queue()
        self.written: queue.Queue[dict] = queue.Queue()
        self.writers: dict[object, str] = {}  # an answer's id -> the thread that wrote it

    def send(self, text: str) -> None:
        assert text.endswith("\n") and text.count("\n") == 1  # one whole message a write
        message = json.loads(text)
        self.writers[message.get("id")] = threading.current_thread().name
        self.written.put(message)

    def lines(self):
        while (line := self.incoming.get()) is not None:
            yield line

    def put(self, message: dict) -> None:
        self.incoming.put(json.dumps(message, ensure_ascii=False) + "\n")

    async def answer(self) -> dict:
        return await asyncio.to_thread(self.written.get, timeout=TIMEOUT)

    async def request(self, request_id: int, method: str, params: dict) -> dict:
        self.put({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return await self.answer()


def initialize(version: str = "2025-11-25") -> dict:
    return {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}


@contextlib.asynccontextmanager
async def serving(fast_tools: frozenset[str] = FAST_TOOLS):
    wire = Wire()
    front = FrontEnd(build_server, wire, fast_tools)
    task = asyncio.create_task(front.serve(wire.lines()))
    try:
        yield wire, front
    finally:
        wire.incoming.put(None)
        await asyncio.wait_for(task, TIMEOUT)


async def initialized(wire: Wire, front: FrontEnd, version: str = "2025-11-25") -> dict:
    answer = await wire.request(0, "initialize", initialize(version))
    wire.put({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert (await wire.request(1, "ping", {}))["result"] == {}  # the SDK has answered the replay by now
    return answer


def call(name: str, **arguments) -> dict:
    return {"name": name, "arguments": arguments}


def test_the_fast_tools_are_the_send_tools_the_lane_can_answer():
    from bridge.mcp.sending import SEND_TOOLS

    assert FAST_TOOLS == SEND_TOOLS.keys()  # the front end names them without importing the lane's modules


async def test_the_handshake_module_matches_the_sdk():
    assert handshake.HANDSHAKE_VERSIONS == HANDSHAKE_PROTOCOL_VERSIONS
    assert handshake.HANDSHAKE_VERSIONS[-1] == LATEST_HANDSHAKE_VERSION


@pytest.mark.parametrize("version", [*HANDSHAKE_PROTOCOL_VERSIONS, "1999-01-01"])
async def test_initialize_is_answered_here_exactly_as_the_sdk_answers_it(folders, version):
    async with serving() as (wire, front):
        answer = await initialized(wire, front, version)
        assert answer["result"]["serverInfo"]["name"] == "cctelegram"
        # The SDK answered the replayed initialize identically (else the fast path stays off), and that answer
        # never reached the wire: the client got one answer to its one request.
        assert front.fast
        assert wire.written.empty()


async def test_a_malformed_initialize_is_left_to_the_sdk(folders):
    async with serving() as (wire, front):
        answer = await wire.request(0, "initialize", {"protocolVersion": "2025-11-25"})
        assert answer["id"] == 0 and "error" in answer
        assert not front.fast


async def test_a_send_is_answered_as_the_sdk_answers_it_and_is_durable(folders):
    arguments = {"type": "task_completion", "title": "Fast: ✅", "data": {"status": "completed"}}
    answers, writers = [], []
    for fast_tools in (FAST_TOOLS, frozenset()):
        async with serving(fast_tools) as (wire, front):
            await initialized(wire, front)
            answers.append(await wire.request(7, "tools/call", call("send_telegram_event", **arguments)))
            writers.append(wire.writers[7])
    assert writers == ["mcp-wire", threading.main_thread().name]  # the send lane, then the SDK on the loop
    fast, sdk = answers
    bodies = [json.loads(answer["result"]["content"][0]["text"]) for answer in answers]
    assert all(body["success"] for body in bodies)
    row = await Event.objects.aget(event_id=bodies[0]["event_id"])
    assert (row.title, row.origin) == ("Fast: ✅", "mcp")
    durable = get_queue()  # whichever backend is configured: the database, or Redis Streams in CI
    try:
        assert sum((await durable.depth()).values()) == 2  # both sends queued before they were answered
    finally:
        await durable.close()
    # Apart from the new event's id, the same answer.
    same = json.dumps(sdk).replace(bodies[1]["event_id"], bodies[0]["event_id"])
    assert fast == json.loads(same)


SENDS = [
    call("send_telegram_event", type="build_completed", title="Build 42: ok", source="ci", data={"x": 1}),
    call("send_telegram_message", message="Deployed: all green 🚀"),
    call(
        "send_task_completion", task_id="t-1", title="Refactor", results="12 passed", files_affected=["a.py"]
    ),
    call("send_performance_alert", title="Memory", current_value=912, threshold=800, severity="high"),
    call("send_approval_request", title="Deploy?", description="Push to prod", options=["Yes", "No"]),
]


@pytest.mark.parametrize("backend", ["database", "redis"])
async def test_every_send_tool_is_answered_in_the_lane_and_durable_on_either_queue(
    folders, backend, redis_url
):
    folders.REDIS_URL = redis_url if backend == "redis" else ""
    async with serving() as (wire, front):
        await initialized(wire, front)
        answers = [await wire.request(10 + i, "tools/call", params) for i, params in enumerate(SENDS)]
        assert {wire.writers[10 + i] for i in range(len(SENDS))} == {"mcp-wire"}
    ids = [json.loads(answer["result"]["content"][0]["text"])["event_id"] for answer in answers]
    rows = {row.event_id: row async for row in Event.objects.filter(event_id__in=ids)}
    assert [rows[event_id].type for event_id in ids] == [
        "build_completed",
        "info_notification",
        "task_completion",
        "performance_alert",
        "approval_request",
    ]
    assert rows[ids[4]].data["options"] == ["Yes", "No"]
    durable = get_queue()
    try:
        assert sum((await durable.depth()).values()) == len(SENDS)  # queued before each answer went out
    finally:
        await durable.close()


@pytest.mark.parametrize(
    "params",
    [
        call("send_telegram_event", type="task_completion", title=""),
        call("send_telegram_event", type="task_completion", title="t", descripton="typo"),
        call("send_approval_request", title="t", description="d", options=[]),
        call("send_telegram_message"),
        call("no_such_tool"),
        {"name": "send_telegram_message", "arguments": "not an object"},
    ],
)
async def test_a_refused_send_is_answered_as_the_sdk_answers_it(folders, params):
    answers = []
    for fast_tools in (FAST_TOOLS | {"no_such_tool"}, frozenset()):
        async with serving(fast_tools) as (wire, front):
            await initialized(wire, front)
            answers.append(await wire.request(3, "tools/call", params))
    assert answers[0] == answers[1]
    assert await Event.objects.acount() == 0


async def test_other_requests_and_notifications_reach_the_sdk(folders):
    async with serving() as (wire, front):
        await initialized(wire, front)
        tools = await wire.request(2, "tools/list", {})
        assert {tool["name"] for tool in tools["result"]["tools"]} >= FAST_TOOLS
        status = await wire.request(3, "tools/call", call("check_bridge_process"))
        assert json.loads(status["result"]["content"][0]["text"])["running"] is False
        wire.incoming.put("not json\n")  # the SDK's to ignore, as it does
        assert (await wire.request(4, "ping", {}))["id"] == 4


async def test_sends_are_held_to_the_event_limits_of_the_bridge_settings(folders):
    settings_row = await BridgeSettings.objects.aget_or_create(pk=BridgeSettings.SINGLETON_PK)
    await BridgeSettings.objects.filter(pk=settings_row[0].pk).aupdate(event_max_description=40)
    params = call("send_telegram_event", type="info_notification", title="Limits", description="x" * 41)
    answers = []
    for fast_tools in (FAST_TOOLS, frozenset()):
        async with serving(fast_tools) as (wire, front):
            await initialized(wire, front)
            answers.append(await wire.request(5, "tools/call", params))
            ok = await wire.request(
                6, "tools/call", {**params, "arguments": {**params["arguments"], "description": "x" * 40}}
            )
            assert json.loads(ok["result"]["content"][0]["text"])["success"]
    assert answers[0] == answers[1]
    refusal = json.loads(answers[0]["result"]["content"][0]["text"])["error"]
    assert answers[0]["result"]["isError"] and refusal["field"] == "description"
    assert (refusal["code"], refusal["message"].endswith("the limit is 40")) == ("too_long", True)
    assert await Event.objects.acount() == 2


def _read_to_end(fd: int, timeout: float = TIMEOUT) -> bytes:
    """What a client reads from the server's output until it closes."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return data
            data += chunk
    raise AssertionError(f"the server's output was not closed; read so far: {data!r}")


async def test_a_server_that_fails_to_start_closes_its_output_while_the_client_still_holds_stdin():
    to_server, from_client = os.pipe()
    to_client, from_server = os.pipe()
    wire = BlockingWire(to_server, from_server)

    def broken() -> None:
        raise RuntimeError("no database")

    os.write(
        from_client,
        (
            json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize()}) + "\n"
        ).encode(),
    )
    try:
        with pytest.raises(RuntimeError, match="no database"):
            await asyncio.wait_for(FrontEnd(broken, wire).serve(wire.lines()), TIMEOUT)
        await asyncio.wait_for(asyncio.to_thread(wire.close), 5)  # not held by the reader still waiting
        answered = await asyncio.to_thread(_read_to_end, to_client)
    finally:
        os.close(from_client)
        os.close(to_client)
    assert (
        json.loads(answered.splitlines()[0])["id"] == 0
    )  # initialize was answered early, then the wire closed


def test_a_message_over_the_size_limit_is_skipped_and_answered_with_an_error(monkeypatch):
    from bridge.mcp import stdio

    monkeypatch.setattr(stdio, "MAX_LINE", 1000)
    to_server, from_client = os.pipe()
    to_client, from_server = os.pipe()
    wire = BlockingWire(to_server, from_server)
    os.write(
        from_client,
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "' + b"x" * 5000 + b'"}}\n',
    )
    os.write(from_client, b'{"jsonrpc": "2.0", "id": 2, "method": "ping"}\n')
    os.close(from_client)
    try:
        assert [json.loads(line)["id"] for line in wire.lines()] == [2]
        wire.close()
        error = json.loads(_read_to_end(to_client))
    finally:
        os.close(to_client)
    assert error["id"] is None and error["error"]["code"] == -32600
