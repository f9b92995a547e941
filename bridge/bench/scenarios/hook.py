"""hook: `python -m bridge.hook` start-up and its approval round trip, on real processes.

The timing itself lives beside the hook (bridge/hook/bench.py, written with it): this scenario runs it and reports.
- hook start -> event file written: a Stop input, from spawning the process to its event file in the events
  folder (target p99 <= 100 ms);
- response file written -> hook prints its decision: the bench plays the bridge, taking the hook's approval
  event and writing the response file a button press produces (target p50 <= 100 ms).
Python caches the hook's compiled modules as an installed hook would; the first run warms that cache.
"""

from __future__ import annotations

import importlib.util

from bridge.bench import stats
from bridge.bench.report import Target
from bridge.bench.scenarios import NotRun

TITLE = "hook start -> event file written; response file -> decision printed"


def run(ctx) -> None:
    if importlib.util.find_spec("bridge.hook.bench") is None:
        raise NotRun("the hook's timing helpers (bridge/hook/bench.py) are not there yet")
    from bridge.hook import bench as hook_bench

    event_runs = ctx.count(100, 20)
    decision_runs = ctx.count(30, 8)
    home = ctx.folder("hook-home")
    env = hook_bench.hook_env(home, bytecode_cache=True)
    hook_bench.time_event_written(home, env)  # warms the file cache and the bytecode cache

    ctx.progress.step(f"{event_runs} hook runs on a Stop input")
    written = []
    for i in range(event_runs):
        written.append(hook_bench.time_event_written(home, env) * 1000)
        ctx.progress.percent(i + 1, event_runs, "runs")
    ctx.progress.step(f"{decision_runs} approval round trips (the bench writes the response file)")
    decided = []
    for i in range(decision_runs):
        decided.append(hook_bench.time_decision(home, env) * 1000)
        ctx.progress.percent(i + 1, decision_runs, "round trips")

    w, d = stats.summary(written), stats.summary(decided)
    result = ctx.result
    result.series["latency_ms"] = {"hook start -> event file": written, "response file -> decision": decided}
    result.add("start -> event file written p50", w.get("p50"), "ms")
    result.add("start -> event file written p99", w.get("p99"), "ms", target=Target("<=", 100))
    result.add("response file -> decision printed p50", d.get("p50"), "ms", target=Target("<=", 100))
    result.add("response file -> decision printed p99", d.get("p99"), "ms")
