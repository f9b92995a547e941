"""A costly figure shared by its askers: computed once for concurrent askers, kept for its maximum age, never
kept when it failed, and not lost when one asker gives up."""

from __future__ import annotations

import asyncio

import pytest

from bridge.snapshot import Snapshot


class Counting:
    """A computation that counts its runs and can be held open until released."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()
        self.release.set()
        self.fail_with: Exception | None = None

    async def __call__(self) -> int:
        self.runs += 1
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return self.runs


async def test_concurrent_askers_wait_for_one_computation():
    compute = Counting()
    compute.release.clear()
    snapshot = Snapshot(compute, max_age=0)
    askers = [asyncio.create_task(snapshot.get()) for _ in range(50)]
    await asyncio.sleep(0)
    compute.release.set()
    assert await asyncio.gather(*askers) == [1] * 50
    assert compute.runs == 1


async def test_a_value_is_kept_for_its_maximum_age_only():
    compute = Counting()
    snapshot = Snapshot(compute, max_age=3600)
    assert [await snapshot.get() for _ in range(3)] == [1, 1, 1]
    snapshot.max_age = 0
    assert await snapshot.get() == 2
    assert await snapshot.get() == 3


async def test_forget_makes_the_next_asker_compute():
    compute = Counting()
    snapshot = Snapshot(compute, max_age=3600)
    assert await snapshot.get() == 1
    snapshot.forget()
    assert await snapshot.get() == 2


async def test_a_failed_computation_is_not_kept():
    compute = Counting()
    compute.fail_with = RuntimeError("database unreachable")
    snapshot = Snapshot(compute, max_age=3600)
    with pytest.raises(RuntimeError, match="database unreachable"):
        await snapshot.get()
    compute.fail_with = None
    assert await snapshot.get() == 2


async def test_an_asker_that_gives_up_does_not_cancel_the_others():
    compute = Counting()
    compute.release.clear()
    snapshot = Snapshot(compute, max_age=0)
    impatient = asyncio.create_task(snapshot.get())
    patient = asyncio.create_task(snapshot.get())
    await asyncio.sleep(0)
    impatient.cancel()
    compute.release.set()
    assert await patient == 1
    assert impatient.cancelled()


def test_a_snapshot_serves_askers_on_successive_event_loops():
    """Django's test client and async_to_sync run each request on a loop of its own."""
    snapshot = Snapshot(Counting(), max_age=0)
    assert asyncio.run(snapshot.get()) == 1
    assert asyncio.run(snapshot.get()) == 2
