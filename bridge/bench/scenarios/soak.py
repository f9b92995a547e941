"""soak: a bridge process at 20 events/s for 30 minutes (2 with --quick): does memory or latency drift?

A real ``manage.py run_bridge`` (embedded default: SQLite and the database queue) sends to the emulator, limits
off as in e2e; the feeder renames one event file every 50 ms. Every 10 s the bench samples the bridge's resident
memory and collects the messages that arrived; each event's latency is the emulator's clock at its sendMessage
minus the feeder's at its rename, grouped by the 10-s window it arrived in. The trends are Theil–Sen slopes (the
median of the slopes between every two samples, which a passing spike of other work cannot tilt) over the samples
after a warm-up (the first quarter, at most 5 minutes: caches, connection pools and the allocator's arenas fill
then). Target, "no growth trend": RSS slope <= 0.5 MB/min (15 MB over 30 minutes) and p50 latency slope
<= 1 ms/min.
"""

from __future__ import annotations

import asyncio
import time

import psutil

from bridge.bench import stats
from bridge.bench.feeder import Feeder
from bridge.bench.harness import (
    LIMITS_OFF,
    Emulator,
    bridge_process,
    latencies_by_marker,
    make_recipients,
    tune,
)
from bridge.bench.report import Target
from bridge.bench.scenarios.e2e import RATE, RECIPIENTS

TITLE = "20 events/s for 30 minutes (2 with --quick): RSS and latency trends"
SAMPLE_SECONDS = 10.0


def run(ctx) -> None:
    minutes = (ctx.soak_minutes or (2.0 if ctx.quick else 30.0)) * ctx.scale
    count = max(1, int(minutes * 60 * RATE))
    make_recipients(RECIPIENTS, by_source=True)
    tune(**LIMITS_OFF)
    events_dir = ctx.folder("events")
    ctx.progress.step(f"staging {count:,} event files ({minutes:g} min at {RATE:.0f}/s)")
    feeder = Feeder(ctx.workdir, events_dir, "soak", count, rate=RATE, sources=RECIPIENTS)
    samples: list[dict] = []
    sends: list[dict] = []
    try:
        feeder.wait_ready(timeout=900)
        with (
            Emulator() as emulator,
            bridge_process(events_dir=events_dir, send=True, env=emulator.env()) as bridge,
        ):
            process = psutil.Process(bridge.pid)
            time.sleep(1.0)
            seq = emulator.last_seq()
            ctx.progress.step(f"soaking for {minutes:g} min, a sample every {SAMPLE_SECONDS:.0f} s")
            feeder.go()
            started = time.monotonic()
            end = started + feeder.duration + 5
            while time.monotonic() < end:
                time.sleep(min(SAMPLE_SECONDS, max(0.0, end - time.monotonic())))
                batch = emulator.sends(seq)
                if batch:
                    seq = batch[-1]["seq"]
                    sends += [c for c in batch if c["ok"]]
                samples.append(
                    {
                        "minute": (time.monotonic() - started) / 60,
                        "rss_mb": process.memory_info().rss / 1_048_576,
                    }
                )
                ctx.progress.percent(time.monotonic() - started, end - started, "of the soak")
            asyncio.run(feeder.finished(timeout=60))
    finally:
        feeder.close()

    renamed = feeder.times()
    _, arrived = latencies_by_marker(sends, "soak", renamed)
    first = renamed[0] if renamed else 0.0
    by_window: dict[int, list[float]] = {}
    for index, at in arrived.items():
        by_window.setdefault(int((at - first) // SAMPLE_SECONDS), []).append((at - renamed[index]) * 1000)
    full_window = RATE * SAMPLE_SECONDS / 2  # a window with fewer arrivals is the ragged end of the run
    windows = [
        {
            "minute": (w + 0.5) * SAMPLE_SECONDS / 60,
            "p50_ms": stats.percentile(v, 50),
            "p99_ms": stats.percentile(v, 99),
            "delivered": len(v),
        }
        for w, v in sorted(by_window.items())
        if len(v) >= full_window
    ]

    warm = min(minutes / 4, 5.0)
    steady_rss = [s for s in samples if s["minute"] >= warm]
    steady_latency = [w for w in windows if w["minute"] >= warm]
    rss_slope = stats.trend([s["minute"] for s in steady_rss], [s["rss_mb"] for s in steady_rss])
    p50_slope = stats.trend([w["minute"] for w in steady_latency], [w["p50_ms"] for w in steady_latency])
    every = [(at - renamed[i]) * 1000 for i, at in arrived.items()]
    overall = stats.summary(every)
    result = ctx.result
    result.series["soak"] = {"rss": samples, "latency": windows}
    result.series["latency_ms"] = {"soak": every}
    add = result.add
    add(f"RSS trend after {warm:g} min warm-up", rss_slope, "MB/min", target=Target("<=", 0.5))
    add(f"latency p50 trend after {warm:g} min warm-up", p50_slope, "ms/min", target=Target("<=", 1.0))
    add("bridge RSS at the start", samples[0]["rss_mb"] if samples else None, "MB")
    add("bridge RSS at the end", samples[-1]["rss_mb"] if samples else None, "MB")
    add("latency p50 over the soak", overall.get("p50"), "ms")
    add("latency p99 over the soak", overall.get("p99"), "ms")
    add(
        f"events delivered (of {count:,})",
        100 * len(arrived) / count,
        "%",
        target=Target(">=", 100),
        lower_is_better=False,
    )
