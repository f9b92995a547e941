"""ingest: a file renamed into the events folder -> durably queued, on both queue backends.

The bridge's ingest stage (watcher, parser, Event row, queue entry) runs here, in this process, with no sender;
the feeder renames files in from its own process. "Durably queued" is the moment ``EventStore.store`` returns for
the batch holding the event: its row and its queue entry are written, and the file may go.

- latency at 50 events/s, p50 and p99 (targets 5 ms and 20 ms);
- sustained throughput: a flood renamed in at once and drained (targets 2,000/s on Redis, 500/s on SQLite);
- Redis round trips for a 1,000-event batch, pipelined (one script call per batch) against one entry at a time,
  counted at the client's socket, and the round trips per 1,000 events during the throughput run.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager

from django.db import connection

from bridge.bench import stats
from bridge.bench.feeder import Feeder, event_id
from bridge.bench.harness import redis_queue
from bridge.bench.report import Target

TITLE = "file renamed -> durably queued: latency at 50 events/s and throughput, both backends"
LATENCY_RATE = 50.0


@contextmanager
def count_round_trips():
    """Count commands written to Redis sockets by this process (a pipeline or a script call is one)."""
    from redis.asyncio.connection import AbstractConnection

    counter = {"trips": 0}
    original = AbstractConnection.send_packed_command

    async def counted(self, command, check_health=True):
        counter["trips"] += 1
        return await original(self, command, check_health)

    AbstractConnection.send_packed_command = counted
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original


async def ingest_run(
    ctx, *, backend: str, tag: str, count: int, rate: float, progress_what: str
) -> tuple[list[float], float, int]:
    """Feed ``count`` files at ``rate`` (0: all at once) to an ingest-only pipeline on ``backend``.

    Returns the per-event latencies (ms, rename -> durably queued), the throughput (events/s from the first
    rename to the last store) and the Redis round trips made during the run (0 on the database)."""
    from bridge.pipeline import Pipeline

    events_dir = ctx.folder(f"{tag}/events")
    feeder = Feeder(ctx.workdir, events_dir, tag, count, rate=rate)
    try:
        await asyncio.to_thread(feeder.wait_ready)
        queue = redis_queue(ctx.redis_url, f"ingest-{tag}") if backend == "redis" else None
        pipeline = Pipeline(events_dir=events_dir, queue=queue)
        stored_at: dict[str, float] = {}
        store = pipeline.store.store

        async def timed_store(events):
            result = await store(events)
            now = time.time()
            for item in result:
                stored_at.setdefault(item.event_id, now)
            return result

        pipeline.store.store = timed_store
        await pipeline.start()
        with count_round_trips() as trips:
            await asyncio.sleep(0.5)  # the watcher is watching, not sweeping
            trips["trips"] = 0
            feeder.go()
            deadline = time.monotonic() + feeder.duration + 30 + count / 200
            while len(stored_at) < count and time.monotonic() < deadline:
                ctx.progress.percent(len(stored_at), count, progress_what)
                await asyncio.sleep(0.05)
            ctx.progress.percent(len(stored_at), count, progress_what)
            round_trips = trips["trips"]
        await feeder.finished(timeout=30)
        await pipeline.stop()
    finally:
        feeder.close()
    renamed = feeder.times()
    latencies = [
        (stored_at[event_id(tag, i)] - t) * 1000
        for i, t in enumerate(renamed)
        if event_id(tag, i) in stored_at
    ]
    if len(latencies) < count:
        ctx.result.notes.append(f"{backend} {tag}: only {len(latencies)} of {count} events stored in time")
    throughput = len(stored_at) / (max(stored_at.values()) - min(renamed)) if stored_at else 0.0
    return latencies, throughput, round_trips


async def batch_round_trips(url: str, size: int = 1000) -> dict[str, float]:
    """Round trips and time to enqueue ``size`` entries in one batch against one at a time."""
    from bridge.queue import NewEntry

    payload = b'{"type": "task_completion", "title": "x"}' + b" " * 500

    def entries(tag: str, n: int) -> list[NewEntry]:
        return [NewEntry(event_pk=i + 1, event_id=f"rt-{tag}-{i}", lane=1, payload=payload) for i in range(n)]

    queue = redis_queue(url, "round-trips")
    try:
        await queue.enqueue_batch(entries("warm", 1))  # creates the consumer groups once
        with count_round_trips() as trips:
            started = time.perf_counter()
            await queue.enqueue_batch(entries("batch", size))
            batch_s = time.perf_counter() - started
            batch_trips = trips["trips"]
            trips["trips"] = 0
            started = time.perf_counter()
            for entry in entries("single", size):
                await queue.enqueue_batch([entry])
            single_s = time.perf_counter() - started
            single_trips = trips["trips"]
    finally:
        await queue.close()
    return {
        "batch_round_trips": batch_trips,
        "single_round_trips": single_trips,
        "batch_ms": batch_s * 1000,
        "single_ms": single_s * 1000,
    }


def _backends(ctx) -> list[str]:
    return ["database", "redis"] if ctx.redis_url else ["database"]


def run(ctx) -> None:
    result = ctx.result
    latency_count = ctx.count(1000, 100)  # 20 s at 50/s; 2 s quick
    flood_count = ctx.count(10_000, 1_000)
    db_label = connection.vendor  # sqlite, or postgresql when the bench runs on PostgreSQL
    result.series["latency_ms"] = {}
    result.series["throughput"] = {}
    for backend in _backends(ctx):
        label = f"{db_label} queue" if backend == "database" else "Redis Streams"
        ctx.progress.step(f"{label}: latency at {LATENCY_RATE:.0f} events/s, {latency_count:,} events")
        latencies, _, _ = asyncio.run(
            ingest_run(
                ctx,
                backend=backend,
                tag=f"lat{backend[:2]}",
                count=latency_count,
                rate=LATENCY_RATE,
                progress_what="stored",
            )
        )
        s = stats.summary(latencies)
        result.series["latency_ms"][label] = latencies
        result.add(f"{label}: latency p50 at 50/s", s.get("p50"), "ms", target=Target("<=", 5))
        result.add(f"{label}: latency p99 at 50/s", s.get("p99"), "ms", target=Target("<=", 20))

        ctx.progress.step(f"{label}: throughput, {flood_count:,} files renamed in at once")
        _, throughput, trips = asyncio.run(
            ingest_run(
                ctx,
                backend=backend,
                tag=f"tp{backend[:2]}",
                count=flood_count,
                rate=0,
                progress_what="stored",
            )
        )
        result.series["throughput"][label] = throughput
        bound = 2000 if backend == "redis" else 500
        result.add(
            f"{label}: sustained throughput",
            throughput,
            "events/s",
            target=Target(">=", bound),
            lower_is_better=False,
        )
        if backend == "redis" and trips:
            result.add(
                "Redis round trips per 1,000 events ingested",
                trips / flood_count * 1000,
                "trips",
                note="during the throughput run (batches of queue_batch_size events)",
            )
    if not ctx.redis_url:
        for metric in ("Redis Streams: latency p50 at 50/s", "Redis Streams: sustained throughput"):
            result.skipped(metric, "", ctx.redis_missing)
        return
    ctx.progress.step("Redis round trips for a 1,000-event batch")
    trips = asyncio.run(batch_round_trips(ctx.redis_url))
    result.series["round_trips"] = trips
    result.add(
        "Redis round trips, 1,000 events in one batch",
        trips["batch_round_trips"],
        "trips",
        baseline=trips["single_round_trips"],
        baseline_label="one by one",
    )
    result.add(
        "enqueue 1,000 events in one batch",
        trips["batch_ms"],
        "ms",
        baseline=trips["single_ms"],
        baseline_label="one by one",
    )
