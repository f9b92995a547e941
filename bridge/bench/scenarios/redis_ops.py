"""redis: one round trip per command against pipelined batches, for ZADD and XADD, on the world's Redis.

The bridge pipelines everything it can (XADD batches go in one script call, rate-limit checks in one script per
send): this shows what that buys on this machine, beside the 300 ms per Redis operation the original reported.
"""

from __future__ import annotations

import asyncio
import time

from django.conf import settings

from bridge.bench import original
from bridge.bench.scenarios import NotRun

TITLE = "Redis round trips: one command at a time against pipelined (ZADD, XADD)"
BATCH = 1_000


async def _measure(url: str, prefix: str, count: int, progress) -> dict[str, dict[str, float]]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    out: dict[str, dict[str, float]] = {}
    try:
        await client.ping()
        commands = {
            "ZADD": lambda target, key, i: target.zadd(key, {f"member-{i}": i}),
            "XADD": lambda target, key, i: target.xadd(key, {"e": i, "p": b"x" * 200}),
        }
        for name, command in commands.items():
            key = f"{prefix}:{name.lower()}"
            progress.step(f"{name}: {count:,} one at a time")
            started = time.perf_counter()
            for i in range(count):
                await command(client, key + ":single", i)
            single = time.perf_counter() - started
            progress.step(f"{name}: {count:,} pipelined in batches of {BATCH:,}")
            started = time.perf_counter()
            for start in range(0, count, BATCH):
                async with client.pipeline(transaction=False) as pipe:
                    for i in range(start, min(start + BATCH, count)):
                        command(pipe, key + ":piped", i)
                    await pipe.execute()
            piped = time.perf_counter() - started
            await client.delete(key + ":single", key + ":piped")
            out[name] = {
                "single_us": single / count * 1e6,
                "piped_us": piped / count * 1e6,
                "single_ops": count / single,
                "piped_ops": count / piped,
                "round_trips_single": count,
                "round_trips_piped": -(-count // BATCH),
            }
    finally:
        await client.aclose()
    return out


def run(ctx) -> None:
    if not ctx.redis_url:
        raise NotRun(ctx.redis_missing)
    count = ctx.count(20_000, 2_000)
    prefix = f"{settings.CC_TELEGRAM_REDIS_PREFIX}:bench-ops"
    found = asyncio.run(_measure(ctx.redis_url, prefix, count, ctx.progress))
    ctx.result.series["redis"] = found
    for name, m in found.items():
        ctx.result.add(
            f"{name} one at a time, per op",
            m["single_us"] / 1000,
            "ms",
            baseline=original.REDIS_OPERATION_MS,
            baseline_label=original.LABEL,
        )
        ctx.result.add(
            f"{name} pipelined, per op",
            m["piped_us"] / 1000,
            "ms",
            baseline=m["single_us"] / 1000,
            baseline_label="one at a time",
        )
        ctx.result.add(
            f"{name} pipelined throughput",
            m["piped_ops"],
            "ops/s",
            baseline=m["single_ops"],
            baseline_label="one at a time",
            lower_is_better=False,
        )
