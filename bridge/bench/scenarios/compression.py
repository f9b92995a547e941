"""compression: zstd levels 1, 3, 6 and 9 on event payloads of 1 KB, 20 KB and 300 KB: time and ratio.

The payloads are event JSON as agents send it (a build log in the description, files and results in data),
made from a fixed seed so every run compresses the same bytes. Each time is the median of repeated calls through
the bridge's own Compressor (one reused zstd context per level, as in the queue).
"""

from __future__ import annotations

import json
import random
import time

from bridge.bench import original
from bridge.bench.stats import percentile
from bridge.compression import Compressor

TITLE = "zstd levels 1/3/6/9 on 1 KB, 20 KB and 300 KB event payloads"
LEVELS = (1, 3, 6, 9)
SIZES = {"1 KB": 1_024, "20 KB": 20 * 1_024, "300 KB": 300 * 1_024}


def payload(size: int, seed: int = 7) -> bytes:
    """An event file of about ``size`` bytes: a task completion carrying its build log."""
    rng = random.Random(seed)
    levels = ("INFO", "INFO", "INFO", "DEBUG", "WARN")
    modules = [f"src/{a}/{b}.py" for a in ("core", "api", "parser", "ui") for b in ("models", "views", "io")]
    lines: list[str] = []
    event = {
        "type": "task_completion",
        "title": "Build and test finished",
        "source": "claude-code",
        "task_id": "task-4711",
        "timestamp": "2026-11-14T12:00:00Z",
        "description": "",
        "data": {
            "status": "completed",
            "results": "1,204 tests passed",
            "files_affected": modules,
            "duration_ms": 84_211,
            "tests_passed": 1204,
            "tests_failed": 0,
            "coverage_percentage": 91.4,
        },
    }
    base = len(json.dumps(event))
    while True:
        # Counting line lengths rather than re-serializing per line: building 300 KB stays linear.
        if base + sum(len(line) + 2 for line in lines) >= size:
            event["description"] = "\n".join(lines)
            return json.dumps(event).encode()
        second = len(lines) / 10
        lines.append(
            f"2026-11-14T12:{int(second) // 60:02d}:{second % 60:06.3f}Z {rng.choice(levels):5} "
            f"[worker-{rng.randrange(4)}] {rng.choice(('compiled', 'tested', 'linted', 'cached'))} "
            f"{rng.choice(modules)} in {rng.randrange(1, 400)} ms (rss {rng.randrange(60, 90)} MB)"
        )


def _median_seconds(call, budget: float) -> float:
    samples = []
    deadline = time.perf_counter() + budget
    while len(samples) < 5 or (time.perf_counter() < deadline and len(samples) < 10_000):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return percentile(samples, 50)


def run(ctx) -> None:
    budget = (0.04 if ctx.quick else 0.2) * ctx.scale  # seconds of repeats per measurement
    table = []
    for size_name, size in SIZES.items():
        data = payload(size)
        for level in LEVELS:
            ctx.progress.step(f"level {level}, {size_name}")
            compressor = Compressor(level=level, min_bytes=0)
            packed, _ = compressor.compress(data)  # warm the context: the queue reuses one per level
            compress_s = _median_seconds(lambda c=compressor, d=data: c.compress(d), budget)
            decompress_s = _median_seconds(lambda c=compressor, p=packed: c.decompress(p), budget)
            ratio = len(packed) / len(data)
            table.append(
                {
                    "level": level,
                    "size": size_name,
                    "bytes": len(data),
                    "compressed_bytes": len(packed),
                    "ratio": ratio,
                    "compress_ms": compress_s * 1000,
                    "decompress_ms": decompress_s * 1000,
                }
            )
            ctx.result.add(
                f"level {level}, {size_name}: time (ratio {ratio:.2f})",
                compress_s * 1000,
                "ms",
                baseline=original.COMPRESSION_MS,
                baseline_label=original.LABEL,
            )
    ctx.result.series["compression"] = table
    ctx.result.notes.append("ratio = compressed size / original size; decompression times are in series")
