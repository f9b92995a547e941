"""Runs the chosen scenarios inside the bench's world and writes what they found.

Each scenario starts from an empty database and a folder of its own, is bounded in time (a watchdog stops one that
overruns its budget), and cannot take the others down: one that cannot run here says why ("not run"), one that
fails is reported as crashed, and the rest go on. The run ends with the table on stdout, the JSON file and the plot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import shutil
import signal
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connection

from bridge.bench import report
from bridge.bench.harness import reset_world
from bridge.bench.progress import Progress
from bridge.bench.report import CRASHED, NOT_RUN, ScenarioResult
from bridge.bench.scenarios import DEFAULT, NotRun, load
from bridge.bench.world import REDIS_ENV, REDIS_MISSING_ENV, WORLD_ENV


@dataclass
class Options:
    scenarios: list[str]
    quick: bool = False
    scale: float = 1.0
    soak_minutes: float | None = None
    output: Path = Path("bench-results")
    markdown: bool = False


@dataclass
class Context:
    """What a scenario gets: its options, its folder, the Redis of the world, progress, and its result."""

    quick: bool
    scale: float
    workdir: Path
    redis_url: str
    redis_missing: str
    progress: Progress
    result: ScenarioResult
    soak_minutes: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def count(self, full: int, quick: int) -> int:
        """A number of events (or calls) for this run's size."""
        return max(1, round((quick if self.quick else full) * self.scale))

    def seconds(self, full: float, quick: float) -> float:
        return max(0.5, (quick if self.quick else full) * self.scale)

    def folder(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


class ScenarioTimeout(Exception):
    pass


def _budget(name: str, options: Options) -> float:
    """Seconds a scenario may take before the watchdog stops it: generous, only there to bound a hang."""
    if name == "soak":
        return (options.soak_minutes or 30) * 60 + 300
    return 180 if options.quick else 900


def run(options: Options) -> int:
    progress = Progress()
    started = time.time()
    # Other work on the machine skews every figure: the load average goes into the report beside them.
    load_at_start = list(os.getloadavg())
    world = Path(os.environ[WORLD_ENV])
    progress.begin("bench", f"world in {world}; database {connection.vendor}")
    progress.step("migrating the bench's fresh database")
    call_command("migrate", interactive=False, verbosity=0)
    results: list[ScenarioResult] = []
    for name in options.scenarios:
        module = load(name)
        result = ScenarioResult(name, module.TITLE)
        ctx = Context(
            quick=options.quick,
            scale=options.scale,
            workdir=world / "scenarios" / name,
            redis_url=os.environ.get(REDIS_ENV, ""),
            redis_missing=os.environ.get(REDIS_MISSING_ENV, "") or "no Redis configured",
            progress=progress,
            result=result,
            soak_minutes=options.soak_minutes,
        )
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        progress.begin(name, module.TITLE)
        began = time.monotonic()
        try:
            reset_world()
            with _watchdog(_budget(name, options)):
                module.run(ctx)
        except NotRun as reason:
            result.status, result.reason = NOT_RUN, str(reason)
            progress.note(f"not run: {reason}")
        except Exception as error:  # ScenarioTimeout too
            result.status, result.reason = CRASHED, f"{type(error).__name__}: {error}"
            progress.note(f"crashed: {result.reason}")
            result.notes.append(traceback.format_exc())
        finally:
            result.seconds = time.monotonic() - began
            connection.close()  # a scenario's threads may have left the connection in any state
        results.append(result)
        progress.note(f"done in {result.seconds:.1f} s")

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    options.output.mkdir(parents=True, exist_ok=True)
    meta = _run_meta(options, started, stamp, load_at_start)
    json_path = options.output / f"{stamp}.json"
    report.write_json(json_path, meta, results)
    table = report.render_table(results, markdown=options.markdown)
    print()
    load_text = ", ".join(f"{x:.1f}" for x in meta["load_average_at_start"])
    print(
        f"CCTelegram bench {stamp} ({'quick' if options.quick else 'full'} run, {meta['machine']}, load {load_text})"
    )
    print(table)
    print()
    print(f"figures: {json_path}")
    plot_path = _plot(options.output, stamp, results, progress)
    if plot_path is not None:
        # README embeds latest.png: only a run of every default scenario replaces it, not a partial one.
        complete = set(DEFAULT) <= set(options.scenarios)
        if complete:
            shutil.copyfile(plot_path, options.output / "latest.png")
        print(f"plot:    {plot_path}" + (f" (copied to {options.output / 'latest.png'})" if complete else ""))
    crashed = [r.name for r in results if r.status == CRASHED]
    if crashed:
        print(f"crashed: {', '.join(crashed)} (tracebacks in the JSON file)")
    return 1 if crashed else 0


def _plot(output: Path, stamp: str, results: list[ScenarioResult], progress: Progress) -> Path | None:
    try:
        from bridge.bench import plot
    except ImportError as error:
        progress.note(f"no plot: {error} (pip install -e '.[bench]')")
        return None
    path = output / f"{stamp}.png"
    plot.draw(results, path, title=f"CCTelegram bench {stamp}")
    return path


def _run_meta(options: Options, started: float, stamp: str, load_at_start: list[float]) -> dict[str, Any]:
    return {
        "timestamp": stamp,
        "started": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(),
        "seconds": round(time.time() - started, 1),
        "quick": options.quick,
        "scale": options.scale,
        "scenarios": options.scenarios,
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "platform": platform.platform(),
        "database": connection.vendor,
        "redis": bool(os.environ.get(REDIS_ENV)),
        "commit": _git_commit(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": list(os.getloadavg()),
    }


def _git_commit() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip()
    return ""


@contextlib.contextmanager
def _watchdog(seconds: float):
    """Raise ScenarioTimeout in the main thread after ``seconds`` (SIGALRM)."""

    def expire(signum, frame):
        raise ScenarioTimeout(f"still running after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
