"""burst: 2,000 events at once to 10 recipients, with Telegram's flood limits enforced by the emulator.

Every event goes to every recipient (20,000 deliveries). The emulator answers 429 as Telegram would (about 1
message per second per chat with a burst of 3, 30 per second per bot); the bridge runs with its default
BridgeSettings (1/s per chat, 30/s overall, digests from a backlog of 10). It must never be answered 429, deliver
or digest every event, and finish in well under two minutes: digests are what make that possible, since 2,000
single messages to one chat at 1/s would take over half an hour.
"""

from __future__ import annotations

import asyncio
import json
import time

from asgiref.sync import sync_to_async

from bridge.bench.feeder import Feeder, index_of
from bridge.bench.harness import Emulator, make_recipients
from bridge.bench.report import Target

TITLE = "2,000 events to 10 recipients with Telegram-like limits on: 429s, digests, longest wait"
RECIPIENTS = 10
TELEGRAM_LIMITS = {"enabled": True, "per_chat_per_second": 1, "per_chat_burst": 3, "global_per_second": 30}


def _delivery_counts() -> dict[str, int]:
    from django.db.models import Count

    from bridge.models import Delivery

    return dict(Delivery.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))


def _sent_times() -> list[tuple[str, float]]:
    from bridge.models import Delivery

    rows = Delivery.objects.filter(sent_at__isnull=False).values_list("event__event_id", "sent_at")
    return [(event_id, sent_at.timestamp()) for event_id, sent_at in rows]


async def _burst(ctx, count: int, timeout: float) -> float:
    from bridge.pipeline import Pipeline
    from bridge.telegram.send import build_sender

    events_dir = ctx.folder("events")
    expected = count * RECIPIENTS
    feeder = Feeder(ctx.workdir, events_dir, "burst", count)
    try:
        await asyncio.to_thread(feeder.wait_ready)
        pipeline = Pipeline(events_dir=events_dir, sender_factory=build_sender)
        await pipeline.start()
        try:
            await asyncio.sleep(0.5)
            ctx.progress.step(f"{count:,} events renamed in at once; waiting for {expected:,} deliveries")
            feeder.go()
            started = time.monotonic()
            while time.monotonic() - started < timeout:
                counts = await sync_to_async(_delivery_counts)()
                done = counts.get("sent", 0) + counts.get("digested", 0) + counts.get("dead", 0)
                ctx.progress.percent(done, expected, "delivered or digested")
                if done >= expected:
                    break
                await asyncio.sleep(0.25)
            elapsed = time.monotonic() - started
            await feeder.finished(timeout=30)
        finally:
            await pipeline.stop()
    finally:
        feeder.close()
    return elapsed


def run(ctx) -> None:
    count = ctx.count(2000, 400)
    timeout = 150.0 if not ctx.quick else 90.0
    make_recipients(RECIPIENTS, by_source=False)
    with Emulator() as emulator:
        emulator.limits(**TELEGRAM_LIMITS)
        emulator.point_bridge_here()
        elapsed = asyncio.run(_burst(ctx, count, timeout))
        stats = emulator.stats()
    counts = _delivery_counts()
    expected = count * RECIPIENTS
    handled = counts.get("sent", 0) + counts.get("digested", 0)
    renamed = json.loads((ctx.workdir / "feeder-burst.json").read_text())["times"]
    waits = [sent - renamed[index_of(event_id)] for event_id, sent in _sent_times()]
    result = ctx.result
    result.series["burst"] = {"deliveries": counts, "emulator": stats, "elapsed_s": elapsed}
    result.series["throughput"] = {"deliveries, digests on": handled / elapsed if elapsed else 0}
    result.add("429 answers from the emulator", stats["too_many_requests"], "", target=Target("<=", 0))
    result.add(
        f"deliveries sent or digested (of {expected:,})",
        100 * handled / expected,
        "%",
        target=Target(">=", 100),
        lower_is_better=False,
    )
    result.add("longest wait of any event", max(waits) if waits else None, "s", target=Target("<=", 120))
    result.add("all delivered after", elapsed, "s")
    result.add(
        "messages sent (digests merge the rest)",
        stats["messages_total"],
        "msgs",
        note=f"{counts.get('sent', 0):,} single, {counts.get('digested', 0):,} deliveries in digests",
    )
    result.add("peak sends to one chat in any second", stats["max_per_chat_per_second"], "msgs")
    result.add("peak sends overall in any second", stats["max_global_per_second"], "msgs")
    if counts.get("dead"):
        result.notes.append(f"{counts['dead']} deliveries went to dead letters")
