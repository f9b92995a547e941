"""e2e: a file renamed into the events folder -> the emulator receives its sendMessage, limits off.

The whole bridge pipeline (watcher, ingest, durable queue, sender with its rate limiter, breaker and delivery
records) runs in this process against the Bot API emulator in its own process; the feeder renames files in from a
third. Latency is the emulator's clock when the call arrived minus the feeder's clock at the rename (one machine,
one wall clock). Each of 25 recipients receives one project's events, so every event is one message. Rate limits are
set as high as BridgeSettings allows and digests off: this measures the pipeline, not Telegram's limits.

Baseline, same run, same emulator, same events: the naive sender (bridge/bench/baseline.py).
"""

from __future__ import annotations

import asyncio
import time

from bridge.bench import original, stats
from bridge.bench.baseline import naive_sender
from bridge.bench.feeder import Feeder
from bridge.bench.harness import LIMITS_OFF, Emulator, latencies_by_marker, make_recipients, tune
from bridge.bench.report import Target

TITLE = "file renamed -> sendMessage at the emulator: latency at 20 events/s, send throughput"
RATE = 20.0
RECIPIENTS = 25
"""Recipients, each receiving one project's events. The rate limiter widens each window by a safety margin of at
most the window itself, so one chat tops out near 50 messages/s at the highest per-chat rate BridgeSettings accepts
(100/s): 25 chats keep the per-chat limit from being what the throughput figure measures."""


async def _phase(ctx, emulator: Emulator, events_dir, tag: str, count: int, rate: float, what: str):
    """Rename ``count`` files at ``rate`` and wait for their messages; (latencies ms, throughput msg/s, sent)."""
    feeder = Feeder(ctx.workdir, events_dir, tag, count, rate=rate, sources=RECIPIENTS)
    try:
        await asyncio.to_thread(feeder.wait_ready)
        since = await asyncio.to_thread(emulator.last_seq)
        feeder.go()
        sends = await asyncio.to_thread(
            emulator.wait_for_sends,
            count,
            since=since,
            timeout=feeder.duration + 30 + count / 20,
            progress=ctx.progress,
            what=what,
        )
        await feeder.finished(timeout=30)
    finally:
        feeder.close()
    renamed = feeder.times()
    latencies, arrived = latencies_by_marker(sends, tag, renamed)
    if len(arrived) < count:
        ctx.result.notes.append(f"{tag}: {len(arrived)} of {count} events reached the emulator in time")
    elapsed = max(arrived.values()) - min(renamed) if arrived else 0
    return latencies, (len(arrived) / elapsed if elapsed > 0 else 0.0), len(arrived)


async def _bridge(ctx, emulator: Emulator, latency_count: int, flood_count: int):
    from bridge.pipeline import Pipeline
    from bridge.telegram.send import build_sender

    events_dir = ctx.folder("bridge-events")
    pipeline = Pipeline(events_dir=events_dir, sender_factory=build_sender)
    await pipeline.start()
    try:
        await asyncio.sleep(0.5)  # watching, not sweeping
        ctx.progress.step(f"bridge: {latency_count:,} events at {RATE:.0f}/s")
        latencies, _, _ = await _phase(ctx, emulator, events_dir, "e2e", latency_count, RATE, "delivered")
        ctx.progress.step(f"bridge: throughput, {flood_count:,} events renamed in at once")
        _, throughput, _ = await _phase(ctx, emulator, events_dir, "e2etp", flood_count, 0, "delivered")
    finally:
        await pipeline.stop()
    return latencies, throughput


async def _naive(ctx, emulator: Emulator, latency_count: int, flood_count: int):
    from bridge.telegram.emulator import TEST_TOKEN

    events_dir = ctx.folder("naive-events")
    stop = asyncio.Event()
    task = asyncio.create_task(
        naive_sender(
            str(events_dir), token=TEST_TOKEN, base_url=emulator.base_url, chat_id=900_001, stop=stop
        )
    )
    try:
        await asyncio.sleep(0.5)
        ctx.progress.step(f"naive sender: {latency_count:,} events at {RATE:.0f}/s")
        latencies, _, _ = await _phase(ctx, emulator, events_dir, "naive", latency_count, RATE, "delivered")
        ctx.progress.step(f"naive sender: throughput, {flood_count:,} events renamed in at once")
        _, throughput, _ = await _phase(ctx, emulator, events_dir, "naivetp", flood_count, 0, "delivered")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    return latencies, throughput


def run(ctx) -> None:
    latency_count = ctx.count(600, 100)  # 30 s at 20/s; 5 s quick
    flood_count = ctx.count(3000, 300)
    make_recipients(RECIPIENTS, by_source=True)
    tune(**LIMITS_OFF)
    started = time.monotonic()
    with Emulator() as emulator:
        emulator.point_bridge_here()
        ours, our_throughput = asyncio.run(_bridge(ctx, emulator, latency_count, flood_count))
        naive, naive_throughput = asyncio.run(_naive(ctx, emulator, latency_count, flood_count))
        errors = emulator.stats()["errors_per_status"]
    ctx.result.series["latency_ms"] = {"bridge": ours, "naive sender": naive}
    ctx.result.series["throughput"] = {
        "bridge sends": our_throughput,
        "naive sender sends": naive_throughput,
    }
    ctx.result.series["emulator_errors"] = errors
    s, n = stats.summary(ours), stats.summary(naive)
    add = ctx.result.add
    add(
        "latency p50 at 20/s",
        s.get("p50"),
        "ms",
        target=Target("<=", 10),
        baseline=n.get("p50"),
        baseline_label="naive",
    )
    add("latency p95 at 20/s", s.get("p95"), "ms", baseline=n.get("p95"), baseline_label="naive")
    add(
        "latency p99 at 20/s",
        s.get("p99"),
        "ms",
        target=Target("<=", 50),
        baseline=n.get("p99"),
        baseline_label="naive",
    )
    add(
        "latency mean at 20/s",
        s.get("mean"),
        "ms",
        baseline=original.EVENT_LATENCY_MS,
        baseline_label=original.LABEL,
    )
    add(
        "send throughput, limits off",
        our_throughput,
        "msg/s",
        target=Target(">=", 300),
        baseline=naive_throughput,
        baseline_label="naive",
        lower_is_better=False,
    )
    if errors:
        ctx.result.notes.append(f"the emulator answered errors: {errors}")
    ctx.result.notes.append(
        f"ran {time.monotonic() - started:.0f} s; naive = watchfiles defaults + PTB, one at a time"
    )
