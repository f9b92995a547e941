"""channel: Claude Code channel mode, the owner's text in and the permission relay round trip, per queue backend.

Three processes, as deployed: the Bot API emulator, ``manage.py run_bridge`` (the one getUpdates poller and the
sender) and ``manage.py mcp_server --channel`` spawned by the SDK's stdio client, which plays Claude Code in this
process. One owner (an approver) talks to the bot in a private chat.

- inbound: a text injected at the emulator (the control API's POST, timed from just before it is written) -> the
  ``notifications/claude/channel`` notification received by the client session;
- permission: the session sends ``notifications/claude/channel/permission_request`` -> the approval message with
  its Allow button is sent to the emulator (the emulator's clock for that sendMessage) ; then a press is injected
  -> the ``notifications/claude/channel/permission`` verdict is received. Bridge time is the sum of both legs: the
  owner's reading and pressing, and the bench's own look-up of the button, are excluded.

Each runs on the database queue and, when the world has a Redis, on Redis (queue, poller lease, rate limits), the
bridge and the channel server both pointed at it. One at a time: these are latencies, not throughput.

The owner's message and press are injected with the bench's own keep-alive client (bridge/bench/httpclient.py),
about 0.2 ms a request: httpx spent about 6 ms on each POST here, all of it inside the figure.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from bridge.bench import stats
from bridge.bench.harness import LIMITS_OFF, MANAGE, PROJECT_ROOT, Emulator, bridge_process, tune, world_env
from bridge.bench.httpclient import KeepAliveClient
from bridge.bench.report import Target
from bridge.bench.scenarios import NotRun

TITLE = "channel: Telegram text -> channel notification, permission_request -> verdict (bridge time)"
OWNER = 424_242
PERSON = {"id": OWNER, "username": "owner", "first_name": "Owner"}
WAIT = 10.0
"""Seconds any one message, approval or verdict may take before the bench gives up on it."""
GAP = 0.05
"""Pause between samples: each measures a message arriving on a quiet channel, not a queue of them."""


class Timeline:
    """The client's side: each notification stamped on arrival (time.time: the emulator's clock is the same)."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self.verdicts: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

    def bindings(self) -> list:
        from mcp.client.extension import NotificationBinding
        from pydantic import BaseModel, ConfigDict

        class Params(BaseModel):
            model_config = ConfigDict(extra="allow")

        async def on_message(params: Params) -> None:
            self.messages.put_nowait((time.time(), params.model_dump()))

        async def on_verdict(params: Params) -> None:
            self.verdicts.put_nowait((time.time(), params.model_dump()))

        return [
            NotificationBinding(
                method="notifications/claude/channel", params_type=Params, handler=on_message
            ),
            NotificationBinding(
                method="notifications/claude/channel/permission", params_type=Params, handler=on_verdict
            ),
        ]


async def _next(queue: asyncio.Queue, what: str, match) -> tuple[float, dict[str, Any]]:
    """The next item of ``queue`` that ``match``es (others, left over from a timed-out sample, are dropped)."""
    deadline = time.monotonic() + WAIT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {what} within {WAIT:.0f} s")
        at, params = await asyncio.wait_for(queue.get(), remaining)
        if match(params):
            return at, params


class Owner:
    """The owner's hand on the emulator's control API: messages and presses, over one kept-alive connection."""

    def __init__(self, control_url: str) -> None:
        url = urlsplit(control_url)
        self.client = KeepAliveClient(url.hostname or "127.0.0.1", url.port or 80)
        self.base = url.path.rstrip("/")

    async def say(self, text: str) -> None:
        await self.client.post_json(f"{self.base}/message", {"chat_id": OWNER, "text": text, "user": PERSON})

    async def press(self, message_id: int, data: str) -> None:
        await self.client.post_json(
            f"{self.base}/callback",
            {"chat_id": OWNER, "message_id": message_id, "data": data, "user": PERSON},
        )


async def _inbound(owner: Owner, timeline: Timeline, count: int, progress) -> list[float]:
    latencies = []
    for i in range(-5, count):  # five warm-up messages: the first ones open connections on every side
        text = f"bench inbound {i}: please run the tests"
        begun = time.time()
        await owner.say(text)
        arrived, _ = await _next(
            timeline.messages, "channel notification", lambda p, t=text: p["content"] == t
        )
        if i >= 0:
            latencies.append((arrived - begun) * 1000)
            if i % 10 == 0:
                progress.percent(i, count, "messages")
        await asyncio.sleep(GAP)
    progress.percent(count, count, "messages")
    return latencies


async def _approval_message(control: httpx.AsyncClient, since: int, request_id: str) -> dict[str, Any]:
    """The approval message for ``request_id`` once sent to the owner: its record, and ``sent_at`` (the time
    the emulator recorded its sendMessage)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = await control.get(
            "/messages",
            params={"chat_id": OWNER, "since": since, "wait": max(0.1, deadline - time.monotonic())},
        )
        for record in found.json()["messages"]:
            if request_id in record["message"].get("text", "") and record["message"].get("reply_markup"):
                calls = (await control.get("/calls", params={"method": "sendMessage"})).json()["calls"]
                sent = [c for c in calls if request_id in str(c["params"].get("text", ""))]
                return {**record, "sent_at": sent[-1]["time"]}
            since = max(since, record["seq"])
    raise TimeoutError(f"no approval message for {request_id} within {WAIT:.0f} s")


async def _permission(
    control, owner: Owner, session, timeline: Timeline, count: int, progress
) -> tuple[list, list, list]:
    """(to the approval message, press -> verdict, their sum) in ms per request."""
    asked, answered, total = [], [], []
    for i in range(-3, count):
        request_id = f"bench{i + 3:05d}"
        since = max([0] + [r["seq"] for r in (await control.get("/messages")).json()["messages"]])
        begun = time.time()
        await session._dispatcher.notify(
            "notifications/claude/channel/permission_request",
            {
                "request_id": request_id,
                "tool_name": "Bash",
                "description": f"Run the test suite ({request_id})",
                "input_preview": "make test",
            },
        )
        record = await _approval_message(control, since, request_id)
        buttons = [b for row in record["message"]["reply_markup"]["inline_keyboard"] for b in row]
        allow = next(b["callback_data"] for b in buttons if "Allow" in b["text"])
        pressed = time.time()
        await owner.press(record["message"]["message_id"], allow)
        arrived, verdict = await _next(
            timeline.verdicts, "verdict", lambda p, r=request_id: p["request_id"] == r
        )
        if verdict["behavior"] != "allow":
            raise RuntimeError(f"verdict for {request_id}: {verdict}")
        if i >= 0:
            asked.append((record["sent_at"] - begun) * 1000)
            answered.append((arrived - pressed) * 1000)
            total.append(asked[-1] + answered[-1])
            progress.percent(i, count, "permission requests")
        await asyncio.sleep(GAP)
    progress.percent(count, count, "permission requests")
    return asked, answered, total


async def _session(ctx, emulator: Emulator, backend: str, errlog, counts: tuple[int, int]) -> dict[str, list]:
    """Spawn the channel server as Claude Code would, then take both measurements through it."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    server = StdioServerParameters(
        command=sys.executable,
        args=[str(MANAGE), "mcp_server", "--channel"],
        env=world_env(
            DJANGO_SETTINGS_MODULE="bridge.mcp.settings",
            CC_TELEGRAM_SESSION="bench",
            **_env(ctx, emulator, backend),
        ),
        cwd=str(PROJECT_ROOT),
    )
    timeline = Timeline()
    owner = Owner(emulator.process.control_url)
    async with (
        httpx.AsyncClient(base_url=emulator.process.control_url, timeout=WAIT + 5) as control,
        owner.client,
        stdio_client(server, errlog=errlog) as (read, write),
        ClientSession(read, write, notification_bindings=timeline.bindings()) as session,
    ):
        await asyncio.wait_for(session.initialize(), 30)
        await asyncio.wait_for(_attached(), 30)
        ctx.progress.step(f"{backend}: {counts[0]} messages, one at a time")
        inbound = await _inbound(owner, timeline, counts[0], ctx.progress)
        ctx.progress.step(f"{backend}: {counts[1]} permission requests, each allowed")
        asked, answered, total = await _permission(control, owner, session, timeline, counts[1], ctx.progress)
    return {"inbound": inbound, "asked": asked, "answered": answered, "total": total}


def _env(ctx, emulator: Emulator, backend: str) -> dict[str, str]:
    """What points a process at the emulator and, for the Redis run, at the world's Redis."""
    return {**emulator.env(), **({"REDIS_URL": ctx.redis_url} if backend == "redis" else {})}


async def _attached() -> None:
    """Wait until the channel session has registered (it does so after the handshake)."""
    from bridge.channel import inbox

    while not await inbox.live_sessions().filter(name="bench").aexists():
        await asyncio.sleep(0.02)


def _setup() -> None:
    from bridge.models import ChannelSession, Recipient

    Recipient.objects.create(chat_id=OWNER, display_name="owner", role=Recipient.Role.APPROVER)
    ChannelSession.objects.all().delete()
    tune(**LIMITS_OFF)


def run(ctx) -> None:
    import importlib.util

    if importlib.util.find_spec("bridge.channel.server") is None:
        raise NotRun("the channel server (bridge/channel/server.py) is not there yet")
    counts = (ctx.count(200, 40), ctx.count(60, 15))
    _setup()
    found: dict[str, dict[str, list[float]]] = {}
    backends = ["database", "redis"] if ctx.redis_url else ["database"]
    with Emulator() as emulator:
        for backend in backends:
            from bridge.models import ChannelSession

            ChannelSession.objects.all().delete()
            events_dir = ctx.folder(f"{backend}-events")
            with (
                bridge_process(events_dir=events_dir, send=True, env=_env(ctx, emulator, backend)),
                open(ctx.workdir / f"channel-server-{backend}.log", "w") as errlog,
            ):
                found[backend] = asyncio.run(_session(ctx, emulator, backend, errlog, counts))
    if not ctx.redis_url:
        ctx.result.notes.append(f"Redis figures not run: {ctx.redis_missing}")
    ctx.result.series["latency_ms"] = {
        f"{what} ({backend})": values[key]
        for backend, values in found.items()
        for what, key in (("text -> notification", "inbound"), ("permission bridge time", "total"))
    }
    add = ctx.result.add
    for backend, values in found.items():
        inbound, total = stats.summary(values["inbound"]), stats.summary(values["total"])
        asked, answered = stats.summary(values["asked"]), stats.summary(values["answered"])
        add(f"{backend}: text -> channel notification p50", inbound.get("p50"), "ms", target=Target("<=", 20))
        add(f"{backend}: text -> channel notification p95", inbound.get("p95"), "ms")
        add(
            f"{backend}: permission_request -> verdict p50, bridge time",
            total.get("p50"),
            "ms",
            target=Target("<=", 50),
        )
        add(f"{backend}: permission_request -> verdict p95, bridge time", total.get("p95"), "ms")
        add(f"{backend}: permission_request -> approval message p50", asked.get("p50"), "ms")
        add(f"{backend}: press -> verdict notification p50", answered.get("p50"), "ms")
