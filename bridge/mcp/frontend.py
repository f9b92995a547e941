"""The stdio wire in front of the SDK's server: ``initialize`` answered before the SDK is loaded, sends answered
on the thread that reads the wire, everything else passed through to the SDK untouched.

An agent starts this server with every session and calls a send tool for every report, so two costs matter:

- start-up: importing the SDK takes ~0.6 s, and the agent waits for ``initialize``. The answer is known without
  it (bridge.mcp.handshake), so it goes out first; then the SDK loads and gets the same ``initialize`` replayed,
  its own answer to it dropped, so its session is initialized as if it had answered. Requests that arrive
  meanwhile wait in order in the SDK's input.
- each send: the SDK routes a request through a dispatcher task, memory streams, middleware and context objects,
  and the tool crosses to the database thread and back. One thread reads the wire; once the SDK has initialized
  its session, a ``tools/call`` of a send tool (FAST_TOOLS) is answered right there, synchronously, by the send
  lane (bridge.mcp.lane), the event durable before the answer is written; what the lane does not answer, and every
  other line, goes to the event loop in the order read.

Every other message (tools/list, resources, ping, notifications, a second initialize, malformed lines, requests
of the 2026 protocol era) is the SDK's to read and answer. The SDK sees lines, as its stdio transport reads them
from a pipe; its output goes to the wire as it writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from bridge.mcp import handshake

if TYPE_CHECKING:
    from bridge.mcp.lane import SendLane
    from bridge.mcp.server import CCTelegramServer

logger = logging.getLogger(__name__)

# Quick, durable, and answered the same way whatever the session: the calls an agent makes all the time.
FAST_TOOLS = frozenset(
    {
        "send_telegram_event",
        "send_telegram_message",
        "send_task_completion",
        "send_performance_alert",
        "send_approval_request",
    }
)


class Wire(Protocol):
    def send(self, text: str) -> None:
        """Write one whole message (its line), from any thread."""


class _SdkInput:
    """The SDK's stdin: the lines the front end passes on, then end of input."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()

    def __aiter__(self) -> _SdkInput:
        return self

    async def __anext__(self) -> str:
        line = await self.lines.get()
        if line is None:
            raise StopAsyncIteration
        return line


class _SdkOutput:
    """The SDK's stdout: the wire, less the SDK's answer to the ``initialize`` replayed to it."""

    def __init__(self, front: FrontEnd) -> None:
        self._front = front

    async def write(self, text: str) -> None:
        if self._front.replayed is None or not self._front.is_replay_answer(text):
            self._front.wire.send(text)

    async def flush(self) -> None:
        pass  # each message is written whole


class FrontEnd:
    def __init__(
        self,
        build_server: Callable[[], CCTelegramServer],
        wire: Wire,
        fast_tools: frozenset[str] = FAST_TOOLS,
    ) -> None:
        self.wire = wire
        self._build = build_server
        self._fast_tools = fast_tools
        self._sdk_input = _SdkInput()
        self._taken: asyncio.Queue[str | None] = asyncio.Queue()  # lines for the event loop, None at the end
        self._sdk: asyncio.Task[None] | None = None
        self.server: CCTelegramServer | None = None
        self._lane: SendLane | None = None
        self.replayed: str | int | None = (
            None  # the id of the initialize answered here and replayed to the SDK
        )
        self._early_version: str | None = None
        self._fast_version: str | None = (
            None  # set once the SDK's session is initialized: the fast path is on
        )

    @property
    def fast(self) -> bool:
        """Whether send tools are answered here (after an initialize answered here, and by the SDK alike)."""
        return self._fast_version is not None

    async def serve(self, lines: Iterable[str]) -> None:
        """Serve until ``lines`` end (the client closed the wire) and the SDK has answered everything it was given.

        ``lines`` is iterated, blocking, on a thread of its own: the one that answers sends (``_answered_here``)."""
        loop = asyncio.get_running_loop()
        taken = self._taken
        failed: list[BaseException] = []

        def read() -> None:
            try:
                for line in lines:
                    if not self._answered_here(line):
                        loop.call_soon_threadsafe(taken.put_nowait, line)
            except BaseException as exc:  # reported by serve, on the event loop
                failed.append(exc)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone: serve has stopped already
                    loop.call_soon_threadsafe(taken.put_nowait, None)
                _close_connections()  # the send lane's, opened on this thread

        threading.Thread(target=read, name="mcp-wire", daemon=True).start()
        try:
            while (line := await taken.get()) is not None:
                await self._take(line)
        finally:
            self._sdk_input.lines.put_nowait(None)
        if failed:
            raise failed[0]
        if self._sdk is not None:
            await self._sdk

    def _answered_here(self, line: str) -> bool:
        """On the wire's thread: answer ``line`` in the send lane, if it is a send it takes."""
        version, lane = self._fast_version, self._lane
        if version is None or lane is None or '"tools/call"' not in line:
            return False
        message = parse_request(line, "tools/call")
        answer = None if message is None else lane.answer(message, version)
        if answer is None:
            return False
        self.wire.send(json.dumps(answer, ensure_ascii=False, separators=(",", ":")) + "\n")
        return True

    async def _take(self, line: str) -> None:
        if self._sdk is not None and self._sdk.done():
            self._sdk.result()  # the SDK stopped: its error ends this server too
            raise RuntimeError("the MCP server stopped")
        if self._sdk is None and '"initialize"' in line:
            await self._answer_early(line)
        if self._sdk is None:
            self._sdk = asyncio.create_task(self._run_sdk())
            # Should the SDK stop (an error), so does the server: the client sees the wire close, not silence.
            self._sdk.add_done_callback(lambda _: self._taken.put_nowait(None))
        self._sdk_input.lines.put_nowait(line)

    async def _answer_early(self, line: str) -> None:
        message = parse_request(line, "initialize")
        if message is None:
            return
        version = handshake.negotiated(message.get("params") or {})
        if version is None:
            return
        self.replayed, self._early_version = message["id"], version
        body = {"jsonrpc": "2.0", "id": message["id"], "result": handshake.initialize_result(version)}
        self.wire.send(json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n")

    def is_replay_answer(self, text: str) -> bool:
        """Whether ``text`` is the SDK's answer to the replayed initialize (then dropped, and the fast path on)."""
        try:
            message = json.loads(text)
        except ValueError:
            return False
        if not isinstance(message, dict) or "method" in message or message.get("id") != self.replayed:
            return False
        self.replayed = None
        if message.get("result") == handshake.initialize_result(self._early_version):
            self._fast_version = self._early_version
        else:  # bridge.mcp.handshake is out of date: a bug, which costs the fast path but breaks nothing else
            logger.warning("the MCP SDK answered initialize otherwise than this server did: %s", text.strip())
        return True

    async def _run_sdk(self) -> None:
        from mcp.server.stdio import stdio_server

        self.server = server = self._build()
        from bridge.mcp.lane import SendLane  # Django is set up now

        self._lane = SendLane(server, self._fast_tools)
        lowlevel = server._lowlevel_server  # what the SDK's own run_stdio_async drives
        async with stdio_server(self._sdk_input, _SdkOutput(self)) as (read, write):
            await lowlevel.run(read, write, lowlevel.create_initialization_options())


def _close_connections() -> None:
    from django.db import connections

    try:
        connections.close_all()
    except Exception:  # a connection already broken: nothing left to close cleanly
        logger.debug("closing the send lane's database connections", exc_info=True)


def parse_request(line: str, method: str) -> dict[str, Any] | None:
    """The JSON-RPC request in ``line`` when it is one for ``method`` with a usable id, else None."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or message.get("method") != method:
        return None
    request_id = message.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        return None
    return message


async def serve(build_server: Callable[[], CCTelegramServer]) -> None:
    """Serve MCP on stdin and stdout, which must be pipes (``bridge.mcp.stdio.on_pipes()``), as an MCP client
    gives them; on anything else, run the SDK's own stdio transport (``CCTelegramServer.run_stdio_async``)."""
    from bridge.mcp import stdio

    _one_malloc_arena()
    with stdio.blocking_wire() as wire:
        await FrontEnd(build_server, wire).serve(wire.lines())


def main() -> bool:
    """``manage.py mcp_server`` with no options, as agents start it: serve stdio with ``initialize`` answered
    before Django is even set up (~0.2 s of imports, which then load while the client reads the answer).
    Returns False, having done nothing, when stdin and stdout are not pipes: the command then runs as usual."""
    from bridge.mcp import stdio

    if not stdio.on_pipes():
        return False
    asyncio.run(serve(_set_up_and_build))
    return True


def _set_up_and_build() -> CCTelegramServer:
    import django

    from bridge.mcp.stdio import logs_to_stderr

    django.setup()
    logs_to_stderr()
    from bridge.mcp.server import build_server

    return build_server()


def _one_malloc_arena() -> None:
    """Let the database thread allocate from the main thread's malloc arena instead of one of its own (glibc;
    elsewhere nothing to do): ~1 MB less RSS in a process started for every agent session, for a malloc lock
    that two threads, one of them mostly waiting, hardly contend for. Must run before that thread starts."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # this process's own C library
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(M_ARENA_MAX, 1)


M_ARENA_MAX = -8  # glibc's malloc.h
