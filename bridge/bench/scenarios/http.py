"""http: /health and /metrics under a staged load, and what the metrics cost the ingest hot path.

The web process is daphne serving cctelegram.asgi:application, in its own process, as deployed. The load follows
the original analysis's k6 plan: ramp up, steady, stress, ramp down, here up to 200 requests/s, half to /health
and half to /metrics. Arrivals are open (scheduled whether or not earlier answers came back, as k6's
constant-arrival-rate executor does), and each latency counts from the scheduled time, so a stall shows in the
figures instead of slowing the load down. An error is anything but HTTP 200: no answer within 5 s, or an arrival
dropped because 100 requests were already waiting (k6's maxVUs). The targets
are k6-style thresholds chosen here (issue 8 names the figures, not their bounds): p95 <= 100 ms, errors <= 1 %.

Metrics overhead: in each of several short rounds, two fresh ingest-only bridge processes (``run_bridge --no-send``),
one with CC_TELEGRAM_METRICS on and one with it off, each with its own database, drain identical floods at the same
time, sharing one core (bridge/bench/paired.py says why and how a round is measured). Drained one after the other,
as this scenario did before, the on/off difference swung from -8 % to +17 % between runs on a busy 2-core machine.
The figure is the median of the rounds' differences in events/s (target: at most 5 % slower with metrics on). Beside
it, each bridge's CPU time per event stored: the median of the rounds for each, and the median of the rounds'
differences, the cost itself whatever share of the core each bridge got.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time

import httpx

from bridge.bench import stats
from bridge.bench.harness import PROJECT_ROOT, world_env
from bridge.bench.httpclient import KeepAliveClient
from bridge.bench.paired import drain_round
from bridge.bench.report import Target
from bridge.bench.world import free_port

TITLE = "/health and /metrics under a staged load to 200 requests/s; metrics overhead on ingest"
ENDPOINTS = ("/health", "/metrics")
TIMEOUT = 5.0
MAX_IN_FLIGHT = 100
"""Requests in flight at once (k6's maxVUs). Beyond it an arrival is dropped and counted as an error: queueing it in
the client would measure the client instead of the server."""


def stages(quick: bool, scale: float) -> list[tuple[str, float, float, float]]:
    """(name, seconds, rate at start, rate at end), k6's ramping-arrival-rate stages."""
    seconds = (2, 3, 2, 1) if quick else (10, 20, 10, 5)
    rates = ((1, 100), (100, 100), (200, 200), (200, 1))
    names = ("ramp up", "steady", "stress", "ramp down")
    return [(n, max(0.5, s * scale), r0, r1) for n, s, (r0, r1) in zip(names, seconds, rates, strict=True)]


def arrivals(plan: list[tuple[str, float, float, float]]) -> list[tuple[float, str]]:
    """Scheduled request times (seconds from the start) with their stage, following each stage's rate ramp."""
    out: list[tuple[float, str]] = []
    offset = 0.0
    for name, seconds, r0, r1 in plan:
        t = 0.0
        while t < seconds:
            out.append((offset + t, name))
            rate = r0 + (r1 - r0) * t / seconds
            t += 1 / max(rate, 1.0)
        offset += seconds
    return out


async def _load(host: str, port: int, plan, progress) -> list[dict]:
    """Run the plan; one record per scheduled request: path, stage, status (code, error, or "dropped"), ms."""
    schedule = arrivals(plan)
    records: list[dict] = []
    in_flight = 0
    client = KeepAliveClient(host, port)

    async def one(path: str, stage: str, scheduled: float) -> None:
        nonlocal in_flight
        in_flight += 1
        try:
            # One deadline for the whole request: connecting, sending, and reading the answer.
            status = await asyncio.wait_for(client.get(path), TIMEOUT)
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as error:
            status = type(error).__name__
        finally:
            in_flight -= 1
        ms = (time.perf_counter() - scheduled) * 1000
        records.append({"path": path, "stage": stage, "status": status, "ms": ms})

    tasks = []
    start = time.perf_counter()
    try:
        for index, (at, stage) in enumerate(schedule):
            delay = start + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            path = ENDPOINTS[index % 2]
            if in_flight >= MAX_IN_FLIGHT:
                # Every virtual user is busy: k6 drops the iteration and counts it; so does the bench (an error).
                records.append({"path": path, "stage": stage, "status": "dropped", "ms": TIMEOUT * 1000})
            else:
                tasks.append(asyncio.create_task(one(path, stage, start + at)))
            if index % 100 == 0:
                progress.percent(at, schedule[-1][0], "of the load plan")
        await asyncio.gather(*tasks)
    finally:
        client.close()
    progress.percent(1, 1, "of the load plan")
    return records


def _daphne(port: int, log) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "cctelegram.asgi:application",
    ]
    return subprocess.Popen(command, env=world_env(), cwd=PROJECT_ROOT, stdout=log, stderr=log)


def _wait_up(base: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode} (see its log in the bench world)")
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("daphne did not answer /health/live in time")


METRICS_MODES = {"on": "1", "off": "0"}
"""CC_TELEGRAM_METRICS of the two bridges compared."""


def _overhead(ctx) -> None:
    """Metrics on against off on the ingest hot path (see the module's docstring)."""
    result = ctx.result
    # An even number: each bridge is started first (and its flood let go first) in half of them.
    rounds = 2 if ctx.quick else 6
    # About two seconds of draining per round at full size (the two bridges share one core): long enough that the
    # first and last batches weigh little, short enough for six rounds (about 9 s each) within a minute.
    count = ctx.count(2000, 500)
    records: list[dict[str, dict]] = []
    envs = {mode: {"CC_TELEGRAM_METRICS": flag} for mode, flag in METRICS_MODES.items()}
    for round_ in range(rounds):
        ctx.progress.step(
            f"metrics overhead, round {round_ + 1} of {rounds}: two fresh bridges (metrics on, off), "
            f"{count:,} files to each at once"
        )
        # Started, and their floods let go, in alternating order.
        order = list(METRICS_MODES) if round_ % 2 == 0 else list(reversed(METRICS_MODES))
        record = drain_round(ctx, envs, f"m{round_}", count, order=order)
        records.append(record)
        on, off = record["on"], record["off"]
        ctx.progress.note(
            f"metrics on {on['events_per_s']:,.0f} events/s, off {off['events_per_s']:,.0f}; "
            f"CPU per event on {on['cpu_ms_per_event']:.3f} ms, off {off['cpu_ms_per_event']:.3f} ms"
        )
    rate = {mode: [r[mode]["events_per_s"] for r in records] for mode in METRICS_MODES}
    cpu = {mode: [r[mode]["cpu_ms_per_event"] for r in records] for mode in METRICS_MODES}
    slower = [_slower(on, off) for on, off in zip(rate["on"], rate["off"], strict=True)]
    # More CPU per event is slower: the same sign as the events/s figure.
    costlier = [100 * (on / off - 1) if off else None for on, off in zip(cpu["on"], cpu["off"], strict=True)]
    result.series["metrics_overhead"] = {
        "rounds": records,
        "events_per_s": rate,
        "cpu_ms_per_event": cpu,
        "slower_pct": slower,
        "cpu_pct": costlier,
    }
    # Each measure twice: its median with metrics on against off, then the median of the rounds' differences.
    for metric, values, unit, difference, overhead, target in (
        ("ingest, metrics on (2 bridges sharing 1 core)", rate, "events/s", "", slower, Target("<=", 5)),
        ("bridge CPU per event, metrics on", cpu, "ms", ", CPU", costlier, None),
    ):
        result.add(
            metric,
            statistics.median(values["on"]),
            unit,
            baseline=statistics.median(values["off"]),
            baseline_label="metrics off",
            lower_is_better=values is cpu,
        )
        result.add(f"metrics overhead on ingest{difference}", _median(overhead), "%", target=target)


def _slower(on: float, off: float) -> float | None:
    """How much slower (%) the bridge with metrics on drained than the one with them off."""
    return 100 * (1 - on / off) if off else None


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def run(ctx) -> None:
    result = ctx.result
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    plan = stages(ctx.quick, ctx.scale)
    with open(ctx.workdir / "daphne.log", "wb") as log:
        ctx.progress.step("starting daphne (cctelegram.asgi:application)")
        process = _daphne(port, log)
        try:
            _wait_up(base, process)
            # Warm-up, unmeasured: the first requests import views and open the database connection.
            for path in ENDPOINTS * 10:
                httpx.get(f"{base}{path}", timeout=TIMEOUT)
            total = sum(seconds for _, seconds, _, _ in plan)
            ctx.progress.step(
                f"staged load for {total:.0f} s: " + ", ".join(f"{n} {s:.0f} s" for n, s, _, _ in plan)
            )
            records = asyncio.run(_load("127.0.0.1", port, plan, ctx.progress))
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    by_path = {path: [r for r in records if r["path"] == path] for path in ENDPOINTS}
    result.series["latency_ms"] = {f"GET {path}": [r["ms"] for r in rs] for path, rs in by_path.items()}
    result.series["http"] = {
        "plan": plan,
        "per_stage": {
            f"{path} {stage}": stats.summary([r["ms"] for r in rs if r["stage"] == stage])
            for path, rs in by_path.items()
            for stage, *_ in plan
        },
        "statuses": {
            str(k): sum(1 for r in records if r["status"] == k) for k in {r["status"] for r in records}
        },
    }
    stress_seconds = next(s for n, s, _, _ in plan if n == "stress")
    stress = [r for r in records if r["stage"] == "stress"]
    answered = sum(1 for r in stress if r["status"] == 200)
    result.series["throughput"] = {"answered 200 OK, stress stage": answered / stress_seconds}
    for path, rs in by_path.items():
        latencies = [r["ms"] for r in rs]
        errors = sum(1 for r in rs if r["status"] != 200)
        result.add(
            f"GET {path} p95, all stages", stats.percentile(latencies, 95), "ms", target=Target("<=", 100)
        )
        result.add(
            f"GET {path} p95, stress (200 req/s)",
            stats.percentile([r["ms"] for r in rs if r["stage"] == "stress"], 95),
            "ms",
        )
        result.add(f"GET {path} errors", 100 * errors / len(rs) if rs else None, "%", target=Target("<=", 1))
    result.add("requests sent", len(records), "")

    _overhead(ctx)
