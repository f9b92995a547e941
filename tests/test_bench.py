"""`manage.py bench`: a tiny run of a few scenarios end to end, and the pieces of its report.

The figures themselves are not asserted (performance is measured by the bench, never by wall-clock thresholds in
tests): only that a run produces every figure with its target, in the table and in the JSON file.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.bench.httpclient import KeepAliveClient
from bridge.bench.report import Figure, ScenarioResult, Target, fmt, render_table
from bridge.bench.stats import percentile, slope, trend

BASE_DIR = Path(__file__).resolve().parent.parent
CONTROL = "/_emulator"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    output = tmp_path_factory.mktemp("bench-results")
    env = dict(os.environ)
    if env.get("CC_TELEGRAM_TEST_REDIS_URL") and not env.get("REDIS_URL"):
        env["REDIS_URL"] = env[
            "CC_TELEGRAM_TEST_REDIS_URL"
        ]  # the suite's Redis, under the run's own key prefix
    command = [sys.executable, "manage.py", "bench", "compression", "ingest", "e2e"]
    command += ["--quick", "--scale", "0.05", "--output", str(output)]
    done = subprocess.run(
        command,
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, output


def test_a_tiny_run_exits_cleanly_and_prints_the_table(tiny_run):
    done, _ = tiny_run
    assert done.returncode == 0, done.stdout + done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("scenario"))
    assert header.split() == ["scenario", "metric", "ours", "target", "baseline", "×", "result"]
    for scenario in ("compression", "ingest", "e2e"):
        assert any(line.startswith(scenario) for line in done.stdout.splitlines()), scenario
    assert "latency p50 at 20/s" in done.stdout and "≤ 10 ms" in done.stdout
    assert "== ingest:" in done.stderr  # progress goes to stderr, the table to stdout


def test_the_json_file_holds_every_figure_with_its_target(tiny_run):
    _, output = tiny_run
    (path,) = [p for p in output.glob("*.json")]
    data = json.loads(path.read_text())
    assert data["run"]["quick"] is True and data["run"]["scenarios"] == ["compression", "ingest", "e2e"]
    assert set(data["scenarios"]) == {"compression", "ingest", "e2e"}
    for scenario in data["scenarios"].values():
        assert scenario["status"] == "ok", scenario
        for figure in scenario["figures"]:
            assert set(figure) >= {"metric", "value", "unit", "target", "baseline", "passed", "ratio"}
    e2e = {f["metric"]: f for f in data["scenarios"]["e2e"]["figures"]}
    assert e2e["latency p99 at 20/s"]["target"] == {"op": "<=", "bound": 50}
    assert e2e["latency p50 at 20/s"]["baseline"] is not None  # the naive sender ran beside the bridge
    assert len(data["scenarios"]["e2e"]["series"]["latency_ms"]["bridge"]) > 0
    ingest = {f["metric"] for f in data["scenarios"]["ingest"]["figures"]}
    assert any("sustained throughput" in metric for metric in ingest)


def test_the_plot_is_written_but_only_a_complete_run_replaces_latest(tiny_run):
    _, output = tiny_run
    (png,) = [p for p in output.glob("2*.png")]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (output / "latest.png").exists()  # README's picture stays that of the last full set


def test_a_past_run_prints_again_as_markdown_for_the_readme(tiny_run):
    _, output = tiny_run
    (path,) = output.glob("*.json")
    done = subprocess.run(
        [sys.executable, "manage.py", "bench", "--from-json", str(path), "--markdown"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "| scenario | metric | ours | target | baseline | × | result |" in done.stdout
    assert "| e2e | latency p50 at 20/s |" in done.stdout


def test_an_unknown_scenario_is_refused_before_anything_runs():
    done = subprocess.run(
        [sys.executable, "manage.py", "bench", "nonsense"], cwd=BASE_DIR, capture_output=True, text=True
    )
    assert done.returncode != 0 and "unknown scenario nonsense" in done.stderr


# --- the report's pieces -------------------------------------------------------------------------------------------
def test_a_figure_passes_against_its_target_and_compares_with_its_baseline():
    latency = Figure("p50", 4.0, "ms", target=Target("<=", 5), baseline=40.0, baseline_label="naive")
    assert latency.passed is True and latency.ratio == 10.0
    throughput = Figure(
        "rate", 250.0, "msg/s", target=Target(">=", 300), baseline=500.0, lower_is_better=False
    )
    assert throughput.passed is False and throughput.ratio == 0.5
    assert Figure("missing", None, "ms", target=Target("<=", 5)).passed is None


def test_the_table_shows_skipped_scenarios_and_figures_with_their_reason():
    ran = ScenarioResult("ingest", "t")
    ran.add("p50", 4.2, "ms", target=Target("<=", 5))
    ran.skipped("Redis Streams: p50", "ms", "no Redis: redis-server is not installed")
    absent = ScenarioResult("mcp", "t", status="not run", reason="the MCP server is not there yet")
    table = render_table([ran, absent])
    assert "4.20 ms" in table and "≤ 5 ms" in table and "pass" in table
    assert "not run: no Redis: redis-server is not installed" in table
    assert "not run: the MCP server is not there yet" in table


def test_numbers_read_well():
    assert [fmt(0.01234, "ms"), fmt(4.123, "ms"), fmt(41.23), fmt(1234.5, "ms"), fmt(5.0), fmt(None)] == [
        "0.0123 ms",
        "4.12 ms",
        "41.2",
        "1,234 ms",
        "5",
        "—",
    ]


def test_percentiles_and_slopes():
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([7], 99) == 7
    assert math.isnan(percentile([], 50))
    assert slope([0, 1, 2, 3], [10, 12, 14, 16]) == pytest.approx(2.0)
    assert slope([1], [5]) == 0.0
    # One spike tilts least squares, not the median of pairwise slopes.
    flat_with_a_spike = [20, 21, 20, 21, 20, 21, 20, 300, 21, 20]
    assert trend(range(10), flat_with_a_spike) == pytest.approx(0.0, abs=0.2)
    assert slope(range(10), flat_with_a_spike) > 5


async def test_the_bench_http_client_injects_and_reads_answers_on_a_kept_alive_connection(emulator):
    owner = {"id": 42, "username": "owner", "first_name": "Owner"}
    async with KeepAliveClient(emulator.host, emulator.port) as client:
        answers = [
            await client.post_json(f"{CONTROL}/message", {"chat_id": 42, "text": f"hello {i}", "user": owner})
            for i in range(3)
        ]
        assert await client.get(f"{CONTROL}/messages?chat_id=42&incoming=1") == 200
        with pytest.raises(RuntimeError, match="HTTP 400"):
            await client.post_json(f"{CONTROL}/message", {"text": "to no chat"})
        # The refused request still answered in full, so the connection stays usable.
        status, body = await client.request("GET", f"{CONTROL}/stats")
    assert [a["message"]["text"] for a in answers] == ["hello 0", "hello 1", "hello 2"]
    assert [u["message"]["text"] for u in emulator.state.updates] == ["hello 0", "hello 1", "hello 2"]
    assert status == 200 and json.loads(body)["ok"] is True
