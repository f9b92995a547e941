"""flood: the bridge's memory while 100,000 event files land at once (10,000 with --quick).

A real bridge process (``manage.py run_bridge --no-send``, the embedded default: SQLite and the database queue)
watches an empty folder; its resident memory is sampled while idle, then while the feeder renames the whole flood
in as fast as it can and the bridge drains it. Backpressure must keep memory bounded: the watcher stops reading
names when the pipeline is full, so the flood waits on disk, not in memory. Target: peak growth <= 20 MB over idle.
"""

from __future__ import annotations

import asyncio
import time

from bridge.bench import original
from bridge.bench.feeder import Feeder
from bridge.bench.harness import RssSampler, bridge_process
from bridge.bench.report import Target

TITLE = "bridge RSS during a 100,000-file flood (bounded memory)"


def _stored() -> int:
    from bridge.models import Event

    return Event.objects.count()


def run(ctx) -> None:
    count = ctx.count(100_000, 10_000)
    events_dir = ctx.folder("events")
    ctx.progress.step(f"staging {count:,} event files")
    feeder = Feeder(ctx.workdir, events_dir, "flood", count)
    try:
        feeder.wait_ready(timeout=600)
        ctx.progress.step("starting a bridge process (ingest only) and measuring it idle")
        with bridge_process(events_dir=events_dir, send=False) as bridge:
            sampler = RssSampler(bridge.pid, interval=0.1).start()
            time.sleep(ctx.seconds(3, 2))
            idle_samples = list(sampler.samples)
            idle = max(mb for _, mb in idle_samples)
            ctx.progress.step(f"flood: {count:,} files renamed in at once")
            feeder.go()
            flood_started = time.monotonic()
            timeout = 60 + count / 200  # far above the slowest drain seen; only bounds a stuck bridge
            stored = 0
            while time.monotonic() - flood_started < timeout:
                stored = _stored()
                ctx.progress.percent(stored, count, "stored")
                if stored >= count:
                    break
                time.sleep(0.5)
            drained = time.monotonic() - flood_started
            asyncio.run(feeder.finished(timeout=60))
            samples = sampler.stop()
    finally:
        feeder.close()
    during = [mb for t, mb in samples if t >= flood_started]
    peak = max(during) if during else idle
    result = ctx.result
    result.series["flood"] = {
        "rss_mb": [(round(t - flood_started, 2), round(mb, 2)) for t, mb in samples],
        "idle_mb": idle,
        "files": count,
        "stored": stored,
    }
    result.series["throughput"] = {"drain, ingest only": stored / drained if drained else 0}
    result.add(f"RSS growth over idle, {count:,}-file flood", peak - idle, "MB", target=Target("<=", 20))
    result.add("bridge RSS idle", idle, "MB", baseline=original.MEMORY_MB, baseline_label=original.LABEL)
    result.add(
        "bridge RSS peak during the flood",
        peak,
        "MB",
        baseline=original.MEMORY_MB,
        baseline_label=original.LABEL,
    )
    result.add("flood drained at", stored / drained if drained else None, "events/s", lower_is_better=False)
    if stored < count:
        result.notes.append(f"only {stored:,} of {count:,} files stored within the time limit")
