"""Bridge processes that differ in one setting, draining identical floods at the same time, on one shared core.

What a setting costs the ingest hot path is a few per cent at most, and a busy machine hides it three ways:
- drains run one after the other meet different moments of the machine: one bridge's rate swung from about 900 to
  3,300 events/s within a run. Here the bridges drain together, so whatever else runs slows all of them;
- even together, the scheduler gives one process more of the two cores than the other for a second at a time (the
  ratio of two identical bridges' rates swung from 0.54 to 1.6 between rounds). Here every thread of the bridges is
  pinned to one core, where the scheduler shares time between them evenly (the feeders and the bench are not
  pinned); two identical bridges' rates then stayed within 4 % of each other;
- two processes running the same code differ by a few per cent (memory layout, hash seed): an identical pair of
  bridges kept one ahead of the other by 7 % over a whole run. Here every round starts fresh processes, launched
  together, in alternating order.

Each bridge has its own database (sharing one, each would wait on the other's writes), home, events folder and Redis
key prefix, so they meet only on the CPU. A round's rate is measured over the interval in which all bridges were
storing: from the latest of their first stored batches to the earliest of their last. Before it, one bridge may
still be noticing its flood (the watcher's step); after it, the others have the core to themselves and the
difference would shrink. Events are stored in batches (100 by default) that carry one time stamp each, so the count
at an instant is interpolated between batches, not rounded down to one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import psutil
from django.conf import settings

from bridge.bench.feeder import Feeder, event_id
from bridge.bench.harness import bridge_process, database_copy, wait_running

BATCH_GAP = 0.002
"""Seconds between two stamps that separate stored batches: the rows of one batch are stamped microseconds apart,
and the next batch comes after its files were parsed (tens of milliseconds for 100)."""


SETTLE = 1.0
"""Seconds the bridges are left idle between saying they are running and the floods."""


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far, all its threads, user and system.

    On Linux, the kernel's CPU clock of that process, to the nanosecond: psutil's figure counts clock ticks of 10 ms,
    which is a few per cent of a one-second round. Elsewhere, psutil's."""
    if sys.platform == "linux":
        return time.clock_gettime(((~pid) << 3) | 2)  # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def shared_core() -> set[int]:
    """The core the bridges compared share: the last one this process may use; none (no pinning) where there is
    only one or the system cannot pin threads."""
    if sys.platform != "linux":
        return set()
    cpus = sorted(os.sched_getaffinity(0))
    return {cpus[-1]} if len(cpus) > 1 else set()


def _pin(pid: int, cpus: set[int]) -> None:
    """Every thread the process has now; the threads it starts later inherit the affinity of their starter."""
    for thread in psutil.Process(pid).threads():
        with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
            os.sched_setaffinity(thread.id, cpus)


@dataclass
class PairedBridge:
    """One of the bridges compared, with its own database (a Django alias in the bench's process)."""

    alias: str
    folder: Path
    events_dir: Path
    pid: int

    def stored(self) -> int:
        from bridge.models import Event

        return Event.objects.using(self.alias).count()

    def stored_at(self, tag: str) -> list[float]:
        """Wall-clock times (sorted) at which the bridge stored the events of the flood ``tag``."""
        from bridge.models import Event

        rows = Event.objects.using(self.alias).filter(event_id__startswith=event_id(tag, 0)[:-6])
        return sorted(at.timestamp() for at in rows.values_list("received_at", flat=True))


@contextmanager
def paired_bridges(
    ctx, envs: dict[str, dict[str, str]], *, order: list[str]
) -> Iterator[dict[str, PairedBridge]]:
    """One fresh ingest-only bridge (``run_bridge --no-send``) per entry of ``envs`` (name: extra environment),
    each on a fresh copy of the bench's database, launched together in ``order`` (of two identical bridges started
    one after the other, the first drained about 4 % slower), pinned to ``shared_core()`` once running, and idle
    until the floods. Stopped together (and their databases deleted) at the end."""
    cpus = shared_core()
    processes = []
    with ExitStack() as stack:
        bridges = {}
        for name in order:
            folder = _folder(ctx, name)
            alias = f"paired_{name}"
            env = {
                "DATABASE_URL": stack.enter_context(database_copy(alias, folder)),
                "CC_TELEGRAM_HOME": str(folder / "home"),
                "CC_TELEGRAM_REDIS_PREFIX": f"{settings.CC_TELEGRAM_REDIS_PREFIX}:paired-{name}",
                **envs[name],
            }
            process = stack.enter_context(
                bridge_process(events_dir=_events_dir(ctx, name), send=False, env=env, wait=False)
            )
            processes.append(process)
            bridges[name] = PairedBridge(alias, folder, _events_dir(ctx, name), process.pid)
        for process in processes:
            wait_running(process)
            if cpus:
                _pin(process.pid, cpus)
        try:
            yield bridges
        finally:
            # All drain at once rather than one after the other (bridge_process then finds them stopped).
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)


def drain_round(
    ctx, envs: dict[str, dict[str, str]], tag: str, count: int, *, order: list[str]
) -> dict[str, dict[str, float]]:
    """Fresh bridges (see paired_bridges) drain identical floods of ``count`` files at the same time (started, and
    their feeders told to go, in ``order``). Per bridge: ``events_per_s`` while all were storing, ``drain_s``
    (seconds from go to its last event stored), ``stored``, and ``cpu_ms_per_event`` (its CPU time over the round,
    per event stored). Raises RuntimeError when a bridge stored none of its flood."""
    # The feeders write their files while the bridges start.
    feeders = {name: Feeder(_folder(ctx, name), _events_dir(ctx, name), tag, count) for name in order}
    try:
        with paired_bridges(ctx, envs, order=order) as bridges:
            for feeder in feeders.values():
                feeder.wait_ready()
            # A bridge that has just said "running" still works through its start for half a second or so (twice
            # its idle CPU): the one that said it last would pay for more of that during its drain.
            time.sleep(SETTLE)
            before = {name: bridge.stored() for name, bridge in bridges.items()}
            cpu = {name: cpu_seconds(bridge.pid) for name, bridge in bridges.items()}
            went = time.time()
            for name in order:
                feeders[name].go()
            # Bounded: a bridge that stalls ends the round with what it stored (and shows as the slower one).
            deadline = time.monotonic() + 30 + count / 50
            draining = set(bridges)
            while draining and time.monotonic() < deadline:
                time.sleep(0.05)
                for name in sorted(draining):
                    if bridges[name].stored() - before[name] >= count:
                        cpu[name] = cpu_seconds(bridges[name].pid) - cpu[name]
                        draining.discard(name)
            for name in draining:
                cpu[name] = cpu_seconds(bridges[name].pid) - cpu[name]
            for feeder in feeders.values():
                asyncio.run(feeder.finished(timeout=30))
            curves = {}
            for name, bridge in bridges.items():
                stamps = bridge.stored_at(tag)
                if not stamps:
                    raise RuntimeError(
                        f"the bridge {name} stored none of flood {tag} (see {bridge.folder}/bridge.log)"
                    )
                curves[name] = _curve(stamps, went)
    finally:
        for feeder in feeders.values():
            feeder.close()
    start = max(curve[1][0] for curve in curves.values())
    end = min(curve[-1][0] for curve in curves.values())
    if end - start < 0.01:  # a flood of about one batch: the whole round from go
        start = went
    return {
        name: {
            "events_per_s": (_count_at(curve, end) - _count_at(curve, start)) / max(end - start, 1e-3),
            "drain_s": curve[-1][0] - went,
            "stored": curve[-1][1],
            "cpu_ms_per_event": 1000 * cpu[name] / curve[-1][1],
        }
        for name, curve in curves.items()
    }


def _folder(ctx, name: str) -> Path:
    return ctx.folder(f"paired-{name}")


def _events_dir(ctx, name: str) -> Path:
    return ctx.folder(f"paired-{name}/events")


def _curve(stamps: list[float], went: float) -> list[tuple[float, int]]:
    """Events stored against time: (go, 0), then one point per stored batch (its stamp, the count after it)."""
    points = [(went, 0)]
    for index, at in enumerate(stamps):
        if index + 1 == len(stamps) or stamps[index + 1] - at > BATCH_GAP:
            points.append((at, index + 1))
    return points


def _count_at(curve: list[tuple[float, int]], at: float) -> float:
    """Events stored by ``at``, linear between batches."""
    if at <= curve[0][0]:
        return curve[0][1]
    for (t0, c0), (t1, c1) in pairwise(curve):
        if at <= t1:
            return c0 + (c1 - c0) * (at - t0) / (t1 - t0)
    return curve[-1][1]
