"""mcp: send_telegram_event latency in-process and over stdio, the server's memory and its start-up.

- in-process: the server (``bridge.mcp.server.build_server``) and an ``mcp.Client`` in this process, no transport;
- stdio: ``manage.py mcp_server`` spawned by the SDK's stdio client, with the lean MCP settings
  (DJANGO_SETTINGS_MODULE=bridge.mcp.settings) that an agent's configuration uses, as a real agent would run it;
  every event is durable (row and queue entry) when its call returns, which the bench checks by counting rows;
- start-up: spawn -> ``initialize`` answered, the median of a few fresh spawns;
- RSS of the stdio server after all the calls.
The per-client rate limit is raised for the bench (MCP_RATE_PER_SECOND): it would otherwise refuse a tight loop of
1,000 calls, which is what it is for, and this measures the calls, not the limiter.

Baselines: the original TypeScript server measured on this kind of machine with a Python client over stdio
(p50 1.33 ms, p99 6.5 ms, 90 MB, 255 ms start) and the 250 ms per request the original's analysis reported.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import statistics
import sys
import time

import psutil
from asgiref.sync import sync_to_async

from bridge.bench import original, stats
from bridge.bench.harness import MANAGE, PROJECT_ROOT, world_env
from bridge.bench.report import Target
from bridge.bench.scenarios import NotRun

TITLE = "send_telegram_event in-process and over stdio, server RSS, start-up"
UNLIMITED = {"MCP_RATE_PER_SECOND": "1000000", "MCP_RATE_BURST": "1000000"}


def _arguments(index: int) -> dict:
    return {
        "type": "task_completion",
        "title": f"Bench call {index}: refactor finished ✅",
        "description": "Split the parser into tokenizer and reader; all call sites updated.",
        "task_id": f"mcp-{index}",
        "source": "bench",
        "data": {"status": "completed", "results": "42 tests passed", "duration_ms": 1234},
    }


def _answer(result) -> dict | None:
    """The tool's JSON answer when it succeeded, else None."""
    try:
        body = json.loads(result.content[0].text)
    except (ValueError, IndexError, AttributeError):
        return None
    return body if not result.is_error and body.get("success") is True else None


def _row_exists(event_id: str) -> bool:
    from bridge.models import Event

    return Event.objects.filter(event_id=event_id).exists()


async def _in_process(count: int, progress) -> tuple[list[float], int]:
    import mcp
    from django.conf import settings

    from bridge.mcp.server import build_server

    settings.MCP_RATE_PER_SECOND, settings.MCP_RATE_BURST = 1_000_000, 1_000_000
    latencies, failed = [], 0
    async with mcp.Client(build_server(), raise_exceptions=True) as client:
        for i in range(20):  # warm-up: the first calls build the queue and compile the validators
            await client.call_tool("send_telegram_event", _arguments(-1 - i))
        for i in range(count):
            started = time.perf_counter()
            result = await client.call_tool("send_telegram_event", _arguments(i))
            latencies.append((time.perf_counter() - started) * 1000)
            failed += _answer(result) is None
            if i % 50 == 0:
                progress.percent(i, count, "calls")
    progress.percent(count, count, "calls")
    return latencies, failed


def _server_params():
    from mcp import StdioServerParameters

    env = world_env(DJANGO_SETTINGS_MODULE="bridge.mcp.settings", **UNLIMITED)
    return StdioServerParameters(
        command=sys.executable, args=[str(MANAGE), "mcp_server"], env=env, cwd=str(PROJECT_ROOT)
    )


def _server_pid() -> int | None:
    for child in psutil.Process().children(recursive=True):
        try:
            if "mcp_server" in " ".join(child.cmdline()):
                return child.pid
        except psutil.Error:
            continue
    return None


async def _stdio(ctx, count: int, spawns: int, errlog) -> dict:
    """Spawn the stdio server ``spawns`` times, timing each start; on the last, make ``count`` timed calls."""
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    startups: list[float] = []
    for attempt in range(spawns):
        started = time.perf_counter()
        async with (
            stdio_client(_server_params(), errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await asyncio.wait_for(session.initialize(), 30)
            startups.append((time.perf_counter() - started) * 1000)
            ctx.progress.note(f"spawn -> initialize answered: {startups[-1]:.0f} ms")
            if attempt == spawns - 1:
                found = await _stdio_calls(ctx, session, count)
    return {"startup_ms": startups, **found}


async def _stdio_calls(ctx, session, count: int) -> dict:
    for i in range(20):  # warm-up, as in-process
        await session.call_tool("send_telegram_event", _arguments(-1 - i))
    latencies, failed, checked, durable = [], 0, 0, 0
    for i in range(count):
        begun = time.perf_counter()
        result = await session.call_tool("send_telegram_event", _arguments(i))
        latencies.append((time.perf_counter() - begun) * 1000)
        body = _answer(result)
        failed += body is None
        if i % 25 == 0:
            # Durable on return: the row is there before the server is asked anything else.
            checked += 1
            durable += bool(body) and await sync_to_async(_row_exists)(body["event_id"])
            ctx.progress.percent(i, count, "calls")
    ctx.progress.percent(count, count, "calls")
    pid = _server_pid()
    return {
        "latency_ms": latencies,
        "failed": failed,
        "rss_mb": psutil.Process(pid).memory_info().rss / 1_048_576 if pid else None,
        "durable": durable,
        "checked": checked,
    }


def run(ctx) -> None:
    if importlib.util.find_spec("bridge.mcp.server") is None:
        raise NotRun("the MCP server (bridge/mcp/server.py) is not there yet")
    count = ctx.count(1000, 200)
    spawns = 5 if not ctx.quick else 2
    result = ctx.result

    ctx.progress.step(f"in-process: {count:,} send_telegram_event calls")
    inproc, inproc_failed = asyncio.run(_in_process(count, ctx.progress))
    ctx.progress.step(f"stdio: {spawns} spawns, then {count:,} calls on the last")
    with open(ctx.workdir / "mcp-server.log", "w") as errlog:
        found = asyncio.run(_stdio(ctx, count, spawns, errlog))

    s_in, s_io = stats.summary(inproc), stats.summary(found["latency_ms"])
    result.series["latency_ms"] = {"in-process call": inproc, "stdio call": found["latency_ms"]}
    result.series["throughput"] = {"stdio calls": 1000 / s_io["mean"] if s_io.get("mean") else 0}
    result.series["mcp"] = {
        "startup_ms": found["startup_ms"],
        "durable_checks": [found["durable"], found["checked"]],
    }
    label = "original TS"
    add = result.add
    add("in-process call p50", s_in.get("p50"), "ms", target=Target("<=", 0.5))
    add("in-process call p99", s_in.get("p99"), "ms")
    add(
        "stdio call p50",
        s_io.get("p50"),
        "ms",
        target=Target("<=", 1.3),
        baseline=original.MCP_STDIO_P50_MS,
        baseline_label=label,
    )
    add(
        "stdio call p99",
        s_io.get("p99"),
        "ms",
        target=Target("<=", 5),
        baseline=original.MCP_STDIO_P99_MS,
        baseline_label=label,
    )
    add(
        "stdio call mean",
        s_io.get("mean"),
        "ms",
        baseline=original.MCP_REQUEST_MS,
        baseline_label=original.LABEL,
    )
    add(
        f"server RSS after {count + 20:,} calls",
        found["rss_mb"],
        "MB",
        target=Target("<=", 90),
        baseline=original.MCP_RSS_MB,
        baseline_label=label,
    )
    add(
        "start-up: spawn -> initialize answered",
        statistics.median(found["startup_ms"]),
        "ms",
        target=Target("<=", 400),
        baseline=original.MCP_STARTUP_MS,
        baseline_label=label,
    )
    add(
        f"stdio events durable on return ({found['checked']} checked)",
        100 * found["durable"] / found["checked"] if found["checked"] else None,
        "%",
        target=Target(">=", 100),
        lower_is_better=False,
    )
    failures = inproc_failed + found["failed"]
    if failures:
        result.notes.append(f"{failures} calls answered an error")
