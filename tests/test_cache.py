"""The tiered cache: L1 LRU bounded by entries and age, L2 shared through Redis, coalesced loads, counters."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache

from bridge.cache import TieredCache
from bridge.models import bump_settings
from bridge.pipeline import Pipeline
from bridge.worker import WorkerHost
from tests.test_settings_wiring import save_in_admin, wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def loader(values: list, result="value", delay: float = 0.0):
    async def load():
        if delay:
            await asyncio.sleep(delay)
        values.append(result)
        return result

    return load


async def test_second_look_up_is_an_l1_hit():
    cache, loads = TieredCache(), []
    assert await cache.get_or_load("k", loader(loads)) == "value"
    assert await cache.get_or_load("k", loader(loads)) == "value"
    assert loads == ["value"]
    assert (cache.stats["l1_hit"], cache.stats["l1_miss"]) == (1, 1)


async def test_entries_expire_after_their_ttl():
    clock, loads = Clock(), []
    cache = TieredCache(ttl_seconds=10, clock=clock)
    await cache.get_or_load("k", loader(loads))
    clock.now += 9
    await cache.get_or_load("k", loader(loads))
    clock.now += 2
    await cache.get_or_load("k", loader(loads))
    assert len(loads) == 2


async def test_a_shorter_ttl_per_value_is_honoured_but_never_a_longer_one():
    clock, loads = Clock(), []
    cache = TieredCache(ttl_seconds=10, clock=clock)
    await cache.get_or_load("short", loader(loads), ttl=1)
    await cache.get_or_load("long", loader(loads), ttl=100)
    clock.now += 2
    await cache.get_or_load("short", loader(loads))
    assert len(loads) == 3
    clock.now += 9
    await cache.get_or_load("long", loader(loads))
    assert len(loads) == 4


async def test_least_recently_used_entries_are_evicted_beyond_max_entries():
    cache, loads = TieredCache(max_entries=2), []
    await cache.get_or_load("a", loader(loads, "a"))
    await cache.get_or_load("b", loader(loads, "b"))
    await cache.get_or_load("a", loader(loads, "a"))  # a is now the most recent
    await cache.get_or_load("c", loader(loads, "c"))
    assert len(cache) == 2
    await cache.get_or_load("a", loader(loads, "a"))
    assert loads == ["a", "b", "c"]
    await cache.get_or_load("b", loader(loads, "b"))
    assert loads == ["a", "b", "c", "b"]


async def test_configure_shrinks_the_cache_live():
    cache = TieredCache(max_entries=10)
    for i in range(10):
        cache.put(str(i), i)
    cache.configure(max_entries=3, ttl_seconds=60, validate_checksums=False)
    assert len(cache) == 3


async def test_concurrent_look_ups_of_one_key_are_coalesced_into_one_load():
    cache, loads = TieredCache(), []
    results = await asyncio.gather(*(cache.get_or_load("k", loader(loads, delay=0.05)) for _ in range(50)))
    assert results == ["value"] * 50
    assert loads == ["value"]
    assert cache.stats["loads"] == 1


async def test_a_failing_load_reaches_every_waiter_and_caches_nothing():
    cache = TieredCache()

    async def broken():
        await asyncio.sleep(0.01)
        raise RuntimeError("database away")

    outcomes = await asyncio.gather(
        *(cache.get_or_load("k", broken) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert len(cache) == 0


@pytest.fixture
def redis_l2(redis_url, key_prefix):
    from django_redis.cache import RedisCache

    backend = RedisCache(redis_url, {"KEY_PREFIX": key_prefix})
    yield backend
    backend.delete_pattern("*")


async def test_shared_values_are_served_from_l2_to_another_process_cache(redis_l2):
    loads = []
    first = TieredCache(l2=redis_l2)
    second = TieredCache(l2=redis_l2)  # another worker: its own L1, the same Redis
    await first.get_or_load("targets", loader(loads, ["alice"]), shared=True)
    assert await second.get_or_load("targets", loader(loads, ["stale"]), shared=True) == ["alice"]
    assert len(loads) == 1
    assert second.stats["l2_hit"] == 1
    await second.invalidate("targets", shared=True)
    first.clear()
    assert await first.get_or_load("targets", loader(loads, ["bob"]), shared=True) == ["bob"]


async def test_a_corrupted_l2_entry_is_refused_when_checksums_are_validated():
    l2 = LocMemCache("checksums", {})
    writer = TieredCache(l2=l2, namespace="n")
    await writer.get_or_load("k", loader([], {"x": 1}), shared=True)
    raw = l2.get("n:k")
    l2.set("n:k", raw[:16] + raw[16:].replace(b"x", b"y"))
    reader = TieredCache(l2=l2, namespace="n", validate_checksums=True)
    loads = []
    assert await reader.get_or_load("k", loader(loads, {"x": 2}), shared=True) == {"x": 2}
    assert loads == [{"x": 2}]


# --- the settings row, as workers read it ----------------------------------------------------------------------
@pytest.fixture
def shared_cache(settings, folders, redis_url, key_prefix):
    """Workers as deployed with Redis: REDIS_URL set and django-redis as Django's cache (this test's own keys)."""
    settings.REDIS_URL = redis_url
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": key_prefix,
        }
    }
    yield caches["default"]
    caches["default"].delete_pattern("*")


def tiers(pipeline: Pipeline) -> dict:
    return {name: pipeline.cache.stats[name] for name in ("l1_miss", "l2_hit", "l2_miss", "loads")}


@pytest.mark.django_db(transaction=True)
async def test_a_worker_warms_the_settings_at_start_and_the_next_one_reads_them_from_l2(shared_cache):
    first = Pipeline()
    await first.start()
    await first.stop()
    assert tiers(first) == {"l1_miss": 1, "l2_hit": 0, "l2_miss": 1, "loads": 1}

    second = Pipeline()  # another worker: its own L1, the same Redis
    await second.start()
    await second.stop()
    assert tiers(second) == {"l1_miss": 1, "l2_hit": 1, "l2_miss": 0, "loads": 0}
    assert second.settings_version == first.settings_version == 1


@pytest.mark.django_db(transaction=True)
async def test_saving_settings_in_the_admin_makes_a_running_worker_read_them_again(
    shared_cache, admin_client
):
    host = WorkerHost(Pipeline())
    await host.start()
    try:
        await sync_to_async(save_in_admin)(admin_client, compression_level=9)
        await wait_for(lambda: host.pipeline.compressor.level == 9)
        # Its cached row was dropped on the change notice: the new one came from the database, not from a tier.
        assert tiers(host.pipeline) == {"l1_miss": 2, "l2_hit": 0, "l2_miss": 2, "loads": 2}
    finally:
        await host.stop()

    later = Pipeline()
    current = await later.load_settings()
    await later.queue.close()
    assert (current.version, current.compression_level) == (2, 9)
    assert tiers(later)["l2_hit"] == 1


@pytest.mark.django_db(transaction=True)
async def test_a_worker_started_after_a_change_nobody_heard_does_not_read_the_old_row(shared_cache):
    before = Pipeline()
    await before.load_settings()
    await before.queue.close()
    await sync_to_async(bump_settings)(
        "alice", mode="muted"
    )  # no worker listening: the save drops the L2 copy

    later = Pipeline()
    current = await later.load_settings()
    await later.queue.close()
    assert (current.version, current.mode) == (2, "muted")
    assert tiers(later) == {"l1_miss": 1, "l2_hit": 0, "l2_miss": 1, "loads": 1}
