"""Timing the hook, for `manage.py bench`: the two figures issue 5 sets, measured on real processes.

- `time_event_written`: from spawning `python -m bridge.hook` with a Stop input to its event file being in the
  events folder (target: p99 <= 100 ms).
- `time_decision`: from a response file landing in the responses folder to the hook printing its decision
  (the hook's share of "button press -> decision"; target p50 <= 100 ms end to end).

The caller plays the bridge: it takes the approval event file and writes the response file itself, so these are
the hook's own figures, without the pipeline. `hook_env(..., bytecode_cache=True)` lets Python cache compiled
modules (in a folder under `home`, never beside the sources), as an installed hook would; the first run after
that warms the cache. Never imported by the hook itself.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENT_PREFIX = "cc_hook_"


def hook_command() -> list[str]:
    return [sys.executable, "-m", "bridge.hook"]


def hook_env(home: Path, *, bytecode_cache: bool = True, **extra: str) -> dict[str, str]:
    """The environment of a hook run whose CCTelegram folders are under `home` (extra: more variables)."""
    env = dict(os.environ)
    for name in ("CC_TELEGRAM_EVENTS_DIR", "CC_TELEGRAM_RESPONSES_DIR", "CC_TELEGRAM_HOOK_TIMEOUT"):
        env.pop(name, None)
    env.update(CC_TELEGRAM_HOME=str(home), PYTHONPATH=str(REPO_ROOT))
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")
    env.update(extra)
    return env


def stop_input(cwd: str = "/home/dev/project") -> bytes:
    return json.dumps(
        {"hook_event_name": "Stop", "session_id": "bench-session", "cwd": cwd, "stop_hook_active": False}
    ).encode()


def permission_input(command: str = "git push origin main", cwd: str = "/home/dev/project") -> bytes:
    return json.dumps(
        {
            "hook_event_name": "PermissionRequest",
            "session_id": "bench-session",
            "cwd": cwd,
            "tool_name": "Bash",
            "tool_input": {"command": command, "description": "Push to origin"},
        }
    ).encode()


def time_event_written(home: Path, env: dict[str, str]) -> float:
    """Seconds from spawning the hook with a Stop input to its event file appearing in home/events."""
    events = home / "events"
    events.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        hook_command(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, cwd=home
    )
    proc.stdin.write(stop_input())
    proc.stdin.close()
    path = wait_for_event(events, timeout=10.0)
    elapsed = time.perf_counter() - started
    proc.wait(timeout=10)
    path.unlink()
    return elapsed


def time_decision(home: Path, env: dict[str, str], *, decision: str = "approved") -> float:
    """Seconds from a response file landing in home/responses to the hook printing its decision."""
    proc = subprocess.Popen(
        hook_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=home, text=True
    )
    try:
        proc.stdin.write(permission_input().decode())
        proc.stdin.close()
        path = wait_for_event(home / "events", timeout=10.0)
        event = json.loads(path.read_bytes())
        path.unlink()  # as the bridge does once the event is stored
        # A person answers later than the hook starts waiting; a random phase against its poll tick.
        time.sleep(0.05 + random.uniform(0.0, 0.02))
        write_response(home / "responses", event, decision)
        written = time.perf_counter()
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - written
        if not line:
            raise RuntimeError("the hook printed no decision")
        return elapsed
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def wait_for_event(events: Path, *, timeout: float) -> Path:
    """The first hook event file in `events`, polled every 0.5 ms. Raises TimeoutError."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with os.scandir(events) as entries:
            for entry in entries:
                if entry.name.startswith(EVENT_PREFIX) and entry.name.endswith(".json"):
                    return Path(entry.path)
        time.sleep(0.0005)
    raise TimeoutError(f"no hook event file in {events} after {timeout} s")


def write_response(responses: Path, event: dict, decision: str, *, username: str = "bench") -> Path:
    """A response file as the bridge writes it for a button press on `event` (written atomically)."""
    action = {"approved": "approve", "denied": "deny"}.get(decision, "approve")
    stamp = time.strftime("%Y%m%d_%H%M%S")
    body = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user_id": 1001,
        "username": username,
        "first_name": "Bench",
        "callback_data": f"{action}_{event['task_id']}",
        "original_message_id": 1,
        "response_type": "callback_query",
        "event_id": event["event_id"],
        "task_id": event["task_id"],
        "decision": decision,
    }
    responses.mkdir(parents=True, exist_ok=True)
    path = responses / f"telegram_callback_1001_{stamp}_{os.urandom(4).hex()}.json"
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(body))
    os.replace(temp, path)
    return path


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 / p99 / max in milliseconds (nearest rank)."""
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)] * 1000

    return {"runs": len(ordered), "p50_ms": rank(0.50), "p99_ms": rank(0.99), "max_ms": ordered[-1] * 1000}


def run(home: Path, *, event_runs: int = 30, decision_runs: int = 20, bytecode_cache: bool = True) -> dict:
    """Both figures: {"event_written": percentiles, "decision": percentiles}."""
    env = hook_env(home, bytecode_cache=bytecode_cache)
    time_event_written(home, env)  # warms the OS file cache and, when enabled, the bytecode cache
    written = [time_event_written(home, env) for _ in range(event_runs)]
    decided = [time_decision(home, env) for _ in range(decision_runs)]
    return {"event_written": percentiles(written), "decision": percentiles(decided)}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for cached in (True, False):
            figures = run(Path(folder) / ("cached" if cached else "uncached"), bytecode_cache=cached)
            print(("bytecode cached" if cached else "no bytecode cache"), json.dumps(figures))
