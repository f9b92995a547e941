"""The auto-tuner: decisions on simulated telemetry series (steady, recovering, noisy, on the edge, 429 bursts,
memory), and its step in a worker: audited changes by "auto-tuner", one tuning worker at a time."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from bridge.consumers import DASHBOARD_GROUP
from bridge.models import AuditEntry, BridgeSettings, Worker, bump_settings
from bridge.pipeline import Pipeline
from bridge.tuning.lease import OldestWorkerLease, tuner_lease
from bridge.tuning.runner import ACTOR, AutoTuner, read_history
from bridge.tuning.tuner import Change, Knobs, Policy, Sample, Tuner, Window

TARGET_MS, BUDGET_MB, STEP = 50.0, 200.0, 10.0
CALM = {"p99_latency_ms": 10.0, "rss_mb": 100.0, "cpu_percent": 20.0, "throttled": 0}


def simulate(
    plant, knobs: Knobs, *, ceilings: Knobs | None = None, minutes: float, tuner: Tuner | None = None
):
    """Feed the tuner one sample every 10 s, as the worker does; ``plant(i, knobs)`` gives the sample's figures
    (it may depend on the knobs the tuner set). Returns the changes made and the final knobs."""
    tuner = tuner or Tuner()
    ceilings = ceilings or knobs
    samples: list[Sample] = []
    history: list[Change] = []
    for i in range(int(minutes * 60 / STEP)):
        samples.append(Sample(at=i * STEP, **(CALM | plant(i, knobs))))
        window = Window(samples[-60:], knobs, ceilings, TARGET_MS, BUDGET_MB, tuple(history))
        for change in tuner.decide(window):
            knobs = replace(knobs, **{change.knob: change.new})
            history.append(change)
    return history, knobs


def values(changes: list[Change], knob: str) -> list[float]:
    return [c.new for c in changes if c.knob == knob]


def flips(changes: list[Change], knob: str) -> int:
    directions = [c.direction for c in changes if c.knob == knob]
    return sum(1 for a, b in itertools.pairwise(directions) if a != b)


KNOBS = Knobs(compression_level=9, cache_max_entries=500, rate_global_per_second=30.0)


def test_steady_high_latency_lowers_compression_step_by_step_to_the_floor_then_stops():
    changes, knobs = simulate(lambda i, k: {"p99_latency_ms": 3 * TARGET_MS}, KNOBS, minutes=60)
    assert values(changes, "compression_level") == [6, 4, 3, 2, 1]
    assert all(c.knob == "compression_level" and c.direction == "down" for c in changes)
    assert all(b.at - a.at >= 60 for a, b in itertools.pairwise(changes))
    assert knobs.compression_level == 1
    assert "p99 latency" in changes[0].reason


def test_latency_that_recovers_brings_compression_back_slowly_to_the_operators_level():
    def plant(i, knobs):
        return {"p99_latency_ms": 3 * TARGET_MS if i < 90 else 5.0}  # high for 15 minutes, then low

    changes, knobs = simulate(plant, KNOBS, minutes=120)
    ups = [c for c in changes if c.direction == "up"]
    assert values(ups, "compression_level") == [2, 3, 4, 5, 6, 7, 8, 9]
    assert (
        flips(changes, "compression_level") == 1
    )  # all the way down, then all the way up: no back and forth
    assert all(b.at - a.at >= 180 for a, b in itertools.pairwise(ups))
    assert knobs == KNOBS


@pytest.mark.parametrize("seed", range(20))
def test_noisy_latency_around_the_target_does_not_flip_flop(seed):
    rng = random.Random(seed)

    def noisy(amplitude):
        return lambda i, k: {"p99_latency_ms": TARGET_MS * (1 + rng.uniform(-amplitude, amplitude))}

    # p99 within 20 % of the target, sample to sample, for two hours: at most one step.
    changes, _ = simulate(noisy(0.2), KNOBS, minutes=120)
    assert len(changes) <= 1
    # Within 30 %: a few steps down at most, and never back up, which would be the flip-flop.
    changes, _ = simulate(noisy(0.3), KNOBS, minutes=120)
    assert len(changes) <= 4
    assert all(c.direction == "down" for c in changes)


def test_latency_alternating_across_the_target_changes_nothing():
    changes, _ = simulate(
        lambda i, k: {"p99_latency_ms": TARGET_MS * (1.5 if i % 2 else 0.4)}, KNOBS, minutes=60
    )
    assert changes == []


def test_a_system_on_the_edge_settles_instead_of_cycling():
    # Level 4 and above make latency high, level 3 and below make it low: every raise to 4 is a mistake.
    def plant(i, knobs):
        return {"p99_latency_ms": 2 * TARGET_MS if knobs.compression_level >= 4 else 0.3 * TARGET_MS}

    changes, _ = simulate(plant, replace(KNOBS, compression_level=6), minutes=6 * 60)
    raises = [c.at for c in changes if c.direction == "up"]
    gaps = [b - a for a, b in itertools.pairwise(raises)]
    assert all(later >= 1.8 * earlier for earlier, later in itertools.pairwise(gaps))
    assert len(raises) <= 6  # in six hours; each retry waits twice as long as the one before
    assert max(c.new for c in changes) <= 4


def test_429_bursts_lower_the_rate_which_comes_back_slowly_never_above_the_ceiling():
    def plant(i, knobs):
        burst = 10 <= i < 16 or 40 <= i < 46  # two one-minute bursts of 429s
        return {"throttled": 5 if burst else 0}

    changes, knobs = simulate(plant, KNOBS, minutes=90)
    rates = values(changes, "rate_global_per_second")
    downs = [c for c in changes if c.direction == "down"]
    assert len(downs) == 2  # one per burst
    assert all(c.new == round(c.old * 0.7, 2) for c in downs)
    assert "429" in downs[0].reason
    assert max(rates) <= 30.0
    assert knobs.rate_global_per_second == 30.0
    ups = [c for c in changes if c.direction == "up"]
    assert all(c.new <= c.old * 1.1 + 1.5 for c in ups)  # small steps (the last one snaps to the ceiling)
    assert all(b.at - a.at >= 180 for a, b in itertools.pairwise(ups))


def test_the_rate_is_never_raised_above_a_ceiling_the_operator_lowered():
    changes, knobs = simulate(
        lambda i, k: {},
        replace(KNOBS, rate_global_per_second=5.0),
        ceilings=replace(KNOBS, rate_global_per_second=8.0),
        minutes=60,
    )
    assert max(values(changes, "rate_global_per_second")) == 8.0
    assert knobs.rate_global_per_second == 8.0


def test_memory_over_budget_shrinks_the_cache_to_its_floor_then_lowers_the_rate():
    changes, knobs = simulate(lambda i, k: {"rss_mb": 1.5 * BUDGET_MB}, KNOBS, minutes=20)
    assert values(changes, "cache_max_entries") == [250, 125, 62, 50]  # floor: a tenth of the operator's 500
    first_rate = next(i for i, c in enumerate(changes) if c.knob == "rate_global_per_second")
    assert all(c.knob == "cache_max_entries" for c in changes[:first_rate])
    assert knobs.cache_max_entries == 50
    assert "memory" in changes[0].reason


def test_high_cpu_lowers_the_rate():
    changes, _ = simulate(lambda i, k: {"cpu_percent": 95.0}, KNOBS, minutes=3)
    assert [(c.knob, c.new) for c in changes][:1] == [("rate_global_per_second", 21.0)]


def test_one_change_at_a_time_with_a_cooldown_between_knobs():
    changes, _ = simulate(lambda i, k: {"throttled": 3, "p99_latency_ms": 4 * TARGET_MS}, KNOBS, minutes=5)
    assert {c.knob for c in changes} == {"rate_global_per_second", "compression_level"}
    assert all(b.at - a.at >= 30 for a, b in itertools.pairwise(changes))


def test_no_samples_no_decision():
    assert Tuner().decide(Window((), KNOBS, KNOBS, TARGET_MS, BUDGET_MB)) == []


# --- in a worker ----------------------------------------------------------------------------------------------------
class FixedTelemetry:
    def __init__(self, **figures) -> None:
        self.figures = CALM | figures

    def sample(self) -> Sample:
        return Sample(at=timezone.now().timestamp(), **self.figures)


class HeldLease:
    holder, ttl = "test", 30.0

    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        pass

    async def close(self) -> None:
        pass


QUICK = Policy(confirm_samples=1, calm_samples=1)


@pytest.mark.django_db(transaction=True)
async def test_a_tuner_step_in_a_worker_applies_its_change_through_the_audited_settings(folders):
    await sync_to_async(bump_settings)("alice", autotune_enabled=True, compression_level=6)
    before = await sync_to_async(BridgeSettings.load)()
    layer = get_channel_layer()
    dashboard = await layer.new_channel()
    await layer.group_add(DASHBOARD_GROUP, dashboard)
    from bridge.worker import WorkerHost

    host = WorkerHost(Pipeline(events_dir=folders.CC_TELEGRAM_EVENTS_DIR))
    await host.pipeline.load_settings()
    host.tuner = AutoTuner(
        host.pipeline.name,
        tuner=Tuner(QUICK),
        telemetry=FixedTelemetry(p99_latency_ms=5 * before.autotune_p99_latency_ms),
        lease=HeldLease(),
        applied=host.settings_changed,
    )
    try:
        changes = await host.tuner.step()
    finally:
        await host.pipeline.queue.close()

    assert [(c.knob, c.old, c.new) for c in changes] == [("compression_level", 6, 4)]
    after = await sync_to_async(BridgeSettings.load)()
    assert after.compression_level == 4 and after.version == before.version + 1
    entry = await AuditEntry.objects.filter(actor=ACTOR).aget()
    assert entry.action == "settings.change"
    assert (entry.before["compression_level"], entry.after["compression_level"]) == (6, 4)
    assert "p99 latency" in entry.detail
    assert host.pipeline.settings_version == after.version  # this worker applied it at once
    assert host.pipeline.compressor.level == 4
    message = await layer.receive(dashboard)
    assert message["type"] == "tuner"
    assert message["changes"][0]["knob"] == "compression_level" and message["version"] == after.version


@pytest.mark.django_db(transaction=True)
async def test_a_disabled_tuner_changes_nothing():
    await sync_to_async(bump_settings)("alice", autotune_enabled=False, compression_level=6)
    before = await sync_to_async(BridgeSettings.load)()
    tuner = AutoTuner(
        "w1", tuner=Tuner(QUICK), telemetry=FixedTelemetry(p99_latency_ms=10_000.0), lease=HeldLease()
    )
    for _ in range(3):
        assert await tuner.step() == []
    after = await sync_to_async(BridgeSettings.load)()
    assert (after.version, after.compression_level) == (before.version, 6)
    assert not await AuditEntry.objects.filter(actor=ACTOR).aexists()


@pytest.mark.django_db
def test_the_ceilings_are_the_operators_latest_values_and_the_history_the_tuners_moves():
    bump_settings("alice", rate_global_per_second=20.0, cache_max_entries=800)
    bump_settings(ACTOR, rate_global_per_second=14.0)
    bump_settings(ACTOR, rate_global_per_second=9.8, cache_max_entries=400)
    bump_settings("bob", compression_level=5)  # another knob: the rate's ceiling stays alice's
    current = BridgeSettings.load()
    ceilings, history = read_history(current)
    assert ceilings == Knobs(compression_level=5, cache_max_entries=800, rate_global_per_second=20.0)
    assert [(c.knob, c.old, c.new) for c in history] == [
        ("rate_global_per_second", 20.0, 14.0),
        ("cache_max_entries", 800, 400),
        ("rate_global_per_second", 14.0, 9.8),
    ]
    bump_settings("alice", rate_global_per_second=12.0)  # the operator's word is the new ceiling
    assert read_history(BridgeSettings.load())[0].rate_global_per_second == 12.0


@pytest.mark.django_db
def test_a_knob_only_the_tuner_changed_keeps_its_value_from_before_the_tuner():
    bump_settings(ACTOR, rate_global_per_second=21.0)
    bump_settings(ACTOR, rate_global_per_second=14.7)
    assert read_history(BridgeSettings.load())[0].rate_global_per_second == 30.0


@pytest.mark.django_db(transaction=True)
async def test_only_one_worker_holds_the_redis_lease(settings, redis_url):
    settings.REDIS_URL = redis_url
    first, second = tuner_lease("w1", ttl=5), tuner_lease("w2", ttl=5)
    try:
        assert await first.acquire() and await first.acquire()  # renewing
        assert not await second.acquire()
        await first.release()
        assert await second.acquire()
        assert not await first.acquire()
    finally:
        for lease in (first, second):
            await lease.release()
            await lease.close()


@pytest.mark.django_db
def test_without_redis_the_oldest_live_worker_tunes(settings):
    settings.REDIS_URL = ""
    now = timezone.now()
    for name, started, beat in (("old", 300, 40), ("middle", 200, 1), ("young", 100, 1)):
        Worker.objects.create(
            name=name,
            hostname="h",
            pid=1,
            started_at=now - timedelta(seconds=started),
            heartbeat_at=now - timedelta(seconds=beat),
        )
    assert isinstance(tuner_lease("middle", ttl=30), OldestWorkerLease)
    # "old" stopped beating 40 s ago: presumed dead, so "middle" tunes.
    assert OldestWorkerLease("middle")._oldest() == "middle"
    Worker.objects.filter(name="middle").delete()
    assert OldestWorkerLease("young")._oldest() == "young"
