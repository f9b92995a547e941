"""The agent's side of a bench: event files written in a staging folder, then renamed into the events folder.

Run as its own process (``python -m bridge.bench.feeder``), like a real agent, so that writing files costs the
bridge under test no CPU time and no GIL. It stages every file first (writing is not what is measured), prints
``ready``, waits for a line on stdin, then renames the files into the events folder at ``--rate`` per second (0:
as fast as it can), each rename timestamped with the wall clock, which the bench compares with the times the
bridge stored or sent the event. The timestamps go to ``--log`` as JSON when it finishes.

No Django here: an agent does not have it either. ``Feeder`` is the bench's handle on such a process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def marker(tag: str, index: int) -> str:
    """The text that identifies event ``index`` in a Telegram message (letters and digits: no escaping)."""
    return f"BENCH{tag}x{index:06d}"


def event_id(tag: str, index: int) -> str:
    return f"bench-{tag}-{index:06d}"


def index_of(event_id_: str) -> int:
    return int(event_id_.rsplit("-", 1)[1])


def event_body(
    tag: str, index: int, *, sources: int = 1, event_type: str = "task_completion"
) -> dict[str, Any]:
    """A realistic event of about 600 bytes: a task finished, with results and files, as agents send them."""
    return {
        "type": event_type,
        "title": f"{marker(tag, index)} refactor finished",
        "description": "Split the parser into tokenizer and reader; all call sites updated, docs regenerated.",
        "source": f"project-{index % sources}",
        "task_id": f"task-{index}",
        "event_id": event_id(tag, index),
        "data": {
            "status": "completed",
            "results": "42 tests passed, coverage 91.5%",
            "files_affected": [f"src/parser/part_{n}.py" for n in range(5)],
            "duration_ms": 1234 + index % 1000,
            "tests_passed": 42,
            "tests_failed": 0,
        },
    }


def stage(folder: Path, tag: str, count: int, *, sources: int, event_type: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        name = f"{tag}-{index:06d}.json"
        body = event_body(tag, index, sources=sources, event_type=event_type)
        (folder / name).write_text(json.dumps(body))
        names.append(name)
    return names


def feed(stage_dir: Path, events_dir: Path, names: list[str], rate: float) -> list[float]:
    """Rename the staged files into the events folder at ``rate`` per second; the wall-clock time of each."""
    times = []
    started = time.monotonic()
    for index, name in enumerate(names):
        if rate > 0:
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        os.rename(stage_dir / name, events_dir / name)
        times.append(time.time())
    return times


# --- the bench's side: driving a feeder process ------------------------------------------------------------------------------------
class Feeder:
    """``python -m bridge.bench.feeder`` in its own process: stages ``count`` files, renames them on ``go()``."""

    def __init__(
        self,
        workdir: Path,
        events_dir: Path,
        tag: str,
        count: int,
        *,
        rate: float = 0.0,
        sources: int = 1,
        event_type: str = "task_completion",
    ) -> None:
        if not tag.isalnum():
            raise ValueError("a feeder tag is letters and digits only (it is part of titles and ids)")
        self.tag, self.count, self.rate = tag, count, rate
        self.log = workdir / f"feeder-{tag}.json"
        command = [sys.executable, "-m", "bridge.bench.feeder", "--events", str(events_dir)]
        command += ["--stage", str(workdir / f"stage-{tag}"), "--tag", tag, "--count", str(count)]
        command += ["--rate", str(rate), "--sources", str(sources)]
        command += ["--type", event_type, "--log", str(self.log)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
        )
        self.started_at = 0.0

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every file is staged; raises RuntimeError if the feeder fails or takes too long."""
        stdout = self.process.stdout
        ready, _, _ = select.select([stdout], [], [], timeout)
        if not ready or stdout.readline().strip() != "ready":
            self.kill()
            raise RuntimeError(f"the feeder did not stage {self.count} files within {timeout:.0f} s")

    def go(self) -> None:
        self.started_at = time.time()
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    @property
    def duration(self) -> float:
        """Seconds the renames take at the feeder's rate (0 when as fast as possible)."""
        return self.count / self.rate if self.rate else 0.0

    async def finished(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("the feeder did not finish in time")
            await asyncio.sleep(0.05)
        if self.process.returncode != 0:
            raise RuntimeError(f"the feeder failed (exit {self.process.returncode})")

    def times(self) -> list[float]:
        """Wall-clock time of each rename, by event index."""
        return json.loads(self.log.read_text())["times"]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bridge.bench.feeder", description=__doc__)
    parser.add_argument("--events", type=Path, required=True, help="the events folder the bridge watches")
    parser.add_argument("--stage", type=Path, required=True, help="staging folder on the same file system")
    parser.add_argument("--tag", required=True, help="letters naming this batch (in titles and event ids)")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="files per second; 0: as fast as possible")
    parser.add_argument("--sources", type=int, default=1, help="spread events over this many projects")
    parser.add_argument("--type", default="task_completion", dest="event_type")
    parser.add_argument("--log", type=Path, required=True, help="where the rename times go (JSON)")
    args = parser.parse_args(argv)

    names = stage(args.stage, args.tag, args.count, sources=args.sources, event_type=args.event_type)
    print("ready", flush=True)
    if not sys.stdin.readline():
        return  # the bench went away before saying go
    times = feed(args.stage, args.events, names, args.rate)
    tmp = args.log.with_suffix(".tmp")
    tmp.write_text(json.dumps({"tag": args.tag, "times": times}))
    os.rename(tmp, args.log)
    print("done", flush=True)


if __name__ == "__main__":
    main()
