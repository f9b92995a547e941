"""Rate limits: the same behaviour from the in-process limiter and the Redis one shared by workers.

Timings are real (asyncio sleeps) and checked only for rate correctness, with generous margins.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from bridge.telegram.limits import (
    ADAPTIVE_FLOOR,
    LocalRateLimiter,
    RateLimiter,
    RateLimits,
    RedisRateLimiter,
)

FAST = dict(global_per_second=1000.0, per_chat_per_second=1000.0, per_group_per_minute=60_000.0)


@pytest.fixture
async def redis_client(redis_url: str, key_prefix: str):
    client = Redis.from_url(redis_url)
    yield client
    keys = [key async for key in client.scan_iter(f"{key_prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(params=["local", "redis"])
async def make_limiter(request, redis_url: str, key_prefix: str):
    """Builds limiters of the parametrized kind; Redis ones built by one test share one prefix, as workers do."""
    clients: list[Redis] = []

    def make(limits: RateLimits) -> RateLimiter:
        if request.param == "local":
            return LocalRateLimiter(limits)
        client = Redis.from_url(redis_url)
        clients.append(client)
        return RedisRateLimiter(client, limits, prefix=key_prefix)

    yield make
    for client in clients:
        keys = [key async for key in client.scan_iter(f"{key_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def timed_sends(limiter: RateLimiter, chat_ids: list[int]) -> list[float]:
    """Acquire for every chat id concurrently; return the moments the sends were allowed, sorted."""
    start = time.monotonic()

    async def one(chat_id: int) -> float:
        await limiter.acquire(chat_id)
        return time.monotonic() - start

    return sorted(await asyncio.gather(*(one(c) for c in chat_ids)))


def most_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


async def test_concurrent_sends_to_one_chat_keep_its_rate(make_limiter):
    limiter = make_limiter(RateLimits(global_per_second=1000, per_chat_per_second=10))

    times = await timed_sends(limiter, [42] * 20)

    assert 1.8 <= times[-1] <= 3.5
    assert most_in_window(times, 1.0) <= 10 + 1
    assert limiter.stats.acquires == 20
    assert limiter.stats.waits == 19
    # The sleeps, without the round trips and scheduling that the measured times also hold.
    assert 0.8 * sum(times) <= limiter.stats.wait_seconds <= sum(times) + 0.5


async def test_a_busy_chat_does_not_hold_back_another(make_limiter):
    limiter = make_limiter(RateLimits(global_per_second=1000, per_chat_per_second=2))
    busy = asyncio.gather(*(limiter.acquire(1) for _ in range(6)))
    await asyncio.sleep(0.05)

    start = time.monotonic()
    await limiter.acquire(2)

    assert time.monotonic() - start < 0.3
    assert max(await busy) > 2.0


async def test_global_bucket_caps_all_chats_together(make_limiter):
    limiter = make_limiter(RateLimits(global_per_second=10, per_chat_per_second=1000))

    times = await timed_sends(limiter, list(range(1, 31)))

    assert 1.9 <= times[-1] <= 3.5
    assert most_in_window(times, 0.95) <= 10


async def test_group_chats_also_obey_the_per_minute_rule(make_limiter):
    # 600 a minute with a burst of 2: at most 2 sends in any 0.2 s, against 100/s per chat.
    limits = RateLimits(
        global_per_second=1000,
        per_chat_per_second=100,
        per_group_per_minute=600,
        per_group_burst=2,
        margin_seconds=0,
    )
    limiter = make_limiter(limits)

    group_times = await timed_sends(limiter, [-100] * 6)
    private_times = await timed_sends(limiter, [100] * 6)

    assert 0.38 <= group_times[-1] <= 1.5
    assert most_in_window(group_times, 0.19) <= 2
    assert private_times[-1] < 0.3


async def test_group_history_outlives_the_shorter_chat_window(make_limiter):
    # 2 a second per group, 10 a second per chat: a send 0.3 s after the first still counts against the group.
    limits = RateLimits(
        global_per_second=1000,
        per_chat_per_second=10,
        per_group_per_minute=120,
        per_group_burst=2,
        margin_seconds=0,
    )
    limiter = make_limiter(limits)
    start = time.monotonic()
    await limiter.acquire(-7)
    await asyncio.sleep(0.3)
    await limiter.acquire(-7)

    await limiter.acquire(-7)

    assert time.monotonic() - start >= 0.95


async def test_margin_widens_every_window(make_limiter):
    limiter = make_limiter(RateLimits(global_per_second=1000, per_chat_per_second=10, margin_seconds=0.05))

    times = await timed_sends(limiter, [6] * 3)

    assert times[1] - times[0] >= 0.14 and times[2] - times[1] >= 0.14


async def test_margin_never_becomes_the_limit_of_a_fast_chat(make_limiter):
    # 100/s per chat: a 50 ms margin would allow 17/s (11 sends in 0.6 s); capped at the 10 ms window, 50/s.
    limiter = make_limiter(RateLimits(global_per_second=1000, per_chat_per_second=100, margin_seconds=0.05))

    times = await timed_sends(limiter, [6] * 11)

    # Never above the configured rate: 11 sends at 100/s take 100 ms or more. (Gaps between single sends are not
    # asserted: a loop busy for a moment returns one acquire late and the next on time, closer than the window.)
    assert times[-1] >= 0.1
    assert times[-1] < 0.4


async def test_penalized_chat_waits_out_retry_after(make_limiter):
    limiter = make_limiter(RateLimits(**FAST, adaptive=False))
    await limiter.penalize(7, 0.5)

    start = time.monotonic()
    await limiter.acquire(8)
    other = time.monotonic() - start
    waited = await limiter.acquire(7)

    assert other < 0.25
    assert 0.4 <= waited <= 1.0
    assert limiter.stats.penalties == 1


async def test_global_penalty_holds_back_every_chat(make_limiter):
    limiter = make_limiter(RateLimits(**FAST, adaptive=False))
    await limiter.penalize(7, 0.4, global_=True)

    times = await timed_sends(limiter, [1, 2, -3])

    assert times[0] >= 0.35
    assert limiter.stats.global_penalties == 1


async def test_penalty_cancels_slots_already_reserved_inside_it(make_limiter):
    limiter = make_limiter(RateLimits(global_per_second=1000, per_chat_per_second=4, adaptive=False))
    start = time.monotonic()
    waiting = asyncio.gather(*(limiter.acquire(5) for _ in range(3)))  # slots at 0, 0.25, 0.5
    await asyncio.sleep(0.1)

    await limiter.penalize(5, 0.6)
    await waiting

    assert time.monotonic() - start >= 0.65


async def test_adaptive_429_halves_the_chat_rate(make_limiter):
    limiter = make_limiter(RateLimits(global_per_second=1000, per_chat_per_second=10, margin_seconds=0))
    await limiter.penalize(9, 0)

    times = await timed_sends(limiter, [9] * 4)

    # 10/s halved: one send every 0.2 s instead of every 0.1 s.
    assert times[-1] >= 0.55
    assert most_in_window(times, 0.19) <= 1


async def test_second_429_inside_a_penalty_does_not_halve_again(make_limiter):
    limiter = make_limiter(RateLimits(**FAST))
    await limiter.penalize(9, 5)
    await limiter.penalize(9, 5)

    assert await limiter.factor(9) == pytest.approx(0.5, abs=0.01)
    assert await limiter.factor(None) == 1.0


async def test_repeated_429s_never_drop_below_the_floor(make_limiter):
    limiter = make_limiter(RateLimits(**FAST))
    for _ in range(8):
        await limiter.penalize(9, 0, global_=True)

    assert await limiter.factor(None) == pytest.approx(ADAPTIVE_FLOOR, abs=0.01)


async def test_adaptive_off_keeps_the_rate(make_limiter):
    limiter = make_limiter(RateLimits(**FAST, adaptive=False))
    await limiter.penalize(9, 0)

    assert await limiter.factor(9) == 1.0


async def test_local_rate_recovers_ten_percent_a_minute():
    now = [1000.0]
    limiter = LocalRateLimiter(RateLimits(), clock=lambda: now[0])
    await limiter.penalize(3, 1)

    assert await limiter.factor(3) == pytest.approx(0.5)
    now[0] += 60
    assert await limiter.factor(3) == pytest.approx(0.6)
    now[0] += 240
    assert await limiter.factor(3) == pytest.approx(1.0)
    now[0] += 600
    assert await limiter.factor(3) == 1.0


async def test_redis_rate_recovers_ten_percent_a_minute(redis_client, key_prefix):
    limiter = RedisRateLimiter(redis_client, RateLimits(**FAST), prefix=key_prefix)
    await limiter.penalize(3, 0)
    # Move the halving two minutes into the past of the server's clock.
    key = f"{key_prefix}:chat:3:factor"
    at = int(await redis_client.hget(key, "at"))
    await redis_client.hset(key, "at", at - 120_000_000)

    assert await limiter.factor(3) == pytest.approx(0.7, abs=0.01)


async def test_update_applies_new_rates_to_the_next_acquire(make_limiter):
    limiter = make_limiter(RateLimits(global_per_second=1000, per_chat_per_second=1))
    slow = await timed_sends(limiter, [11, 11])

    limiter.update(RateLimits(global_per_second=1000, per_chat_per_second=50, margin_seconds=0))
    fast = await timed_sends(limiter, [12] * 5)

    assert slow[-1] >= 0.9
    assert fast[-1] < 0.3


async def test_two_redis_workers_share_one_chat_rate(redis_url, key_prefix):
    limits = RateLimits(global_per_second=1000, per_chat_per_second=10)
    clients = [Redis.from_url(redis_url), Redis.from_url(redis_url)]
    workers = [RedisRateLimiter(c, limits, prefix=key_prefix) for c in clients]
    start = time.monotonic()

    async def send(worker: RedisRateLimiter) -> float:
        await worker.acquire(77)
        return time.monotonic() - start

    try:
        times = sorted(await asyncio.gather(*(send(workers[i % 2]) for i in range(20))))
    finally:
        for c in clients:
            await c.aclose()

    assert times[-1] >= 1.8
    assert most_in_window(times, 1.0) <= 10 + 1


async def test_redis_acquire_is_one_round_trip(redis_client, key_prefix):
    limiter = RedisRateLimiter(redis_client, RateLimits(**FAST), prefix=key_prefix)
    await limiter.acquire(1)  # loads the script
    commands: list[str] = []
    execute = redis_client.execute_command

    async def counting(*args, **kwargs):
        commands.append(str(args[0]))
        return await execute(*args, **kwargs)

    redis_client.execute_command = counting
    for chat_id in (1, 2, -3, 1):
        await limiter.acquire(chat_id)

    assert commands == ["EVALSHA"] * 4


async def test_redis_keys_expire_when_idle(redis_client, key_prefix):
    limiter = RedisRateLimiter(redis_client, RateLimits(**FAST), prefix=key_prefix)
    await limiter.acquire(1)
    await limiter.acquire(-2)
    await limiter.penalize(1, 1)

    keys = [key async for key in redis_client.scan_iter(f"{key_prefix}*")]
    ttls = [await redis_client.pttl(key) for key in keys]

    assert len(keys) >= 6
    assert all(0 < ttl for ttl in ttls), dict(zip(keys, ttls, strict=True))


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        RateLimits(per_chat_per_second=0)
    with pytest.raises(ValueError):
        RateLimits(per_chat_burst=0)
