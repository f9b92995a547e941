from __future__ import annotations

import json
import os
import random
import threading

import pytest

from bridge.compression import Compressor


def event_json(size: int) -> bytes:
    """A JSON event of about ``size`` bytes, about as repetitive as a real build log."""
    rng = random.Random(size)
    words = ["assert", "failed", "expected", "got", "None", "src", "module", "line", "error", "test", "ok"]
    lines = [
        f"src/{rng.choice(words)}_{rng.randrange(500)}.py:{rng.randrange(9999)}: "
        + " ".join(rng.choice(words) for _ in range(6))
        for _ in range(size // 50 + 1)
    ]
    return json.dumps({"type": "build_failed", "title": "Build failed", "data": {"log": lines}}).encode()[
        :size
    ]


def test_payload_round_trips_compressed():
    compressor = Compressor(level=3, min_bytes=1024)
    data = event_json(20_000)
    stored, compressed = compressor.compress(data)
    assert compressed
    assert len(stored) < len(data) / 2
    assert compressor.decompress(stored) == data


def test_payload_below_threshold_is_left_untouched():
    compressor = Compressor(level=3, min_bytes=4096)
    data = event_json(4095)
    assert compressor.compress(data) == (data, False)


def test_incompressible_payload_is_left_untouched():
    compressor = Compressor(level=3, min_bytes=16)
    data = os.urandom(10_000)
    stored, compressed = compressor.compress(data)
    assert not compressed
    assert stored is data


@pytest.mark.parametrize("level", [0, 23, -1, 3.0, "3", True])
def test_bad_level_is_refused(level):
    with pytest.raises(ValueError, match="zstd level"):
        Compressor(level=level)
    compressor = Compressor(level=3)
    with pytest.raises(ValueError, match="zstd level"):
        compressor.set_level(level)
    assert compressor.level == 3


def test_negative_threshold_is_refused():
    with pytest.raises(ValueError, match="threshold"):
        Compressor(min_bytes=-1)


def test_set_level_applies_to_the_next_payload():
    compressor = Compressor(level=1, min_bytes=0)
    data = event_json(200_000)
    fast, _ = compressor.compress(data)
    compressor.set_level(19)
    assert compressor.level == 19
    strong, _ = compressor.compress(data)
    assert len(strong) < len(fast)
    assert compressor.decompress(strong) == compressor.decompress(fast) == data


def test_set_min_bytes_applies_to_the_next_payload():
    compressor = Compressor(level=3, min_bytes=100_000)
    data = event_json(10_000)
    assert compressor.compress(data) == (data, False)
    compressor.set_min_bytes(1_000)
    assert compressor.compress(data)[1]


def test_stats_count_bytes_and_outcomes():
    compressor = Compressor(level=3, min_bytes=1024)
    big, small = event_json(50_000), b'{"type": "task_completed"}'
    stored, _ = compressor.compress(big)
    compressor.compress(small)
    compressor.decompress(stored)
    stats = compressor.stats()
    assert stats.bytes_in == len(big) + len(small)
    assert stats.bytes_out == len(stored) + len(small)
    assert (stats.compressed, stats.stored_raw) == (1, 1)
    assert stats.compress_seconds > 0 and stats.decompress_seconds > 0
    assert stats.ratio < 0.5


def test_compressor_is_shared_safely_by_threads():
    compressor = Compressor(level=3, min_bytes=0)
    payloads = [event_json(5_000 + 97 * i) for i in range(8)]
    failures: list[str] = []

    def work(data: bytes) -> None:
        for round_ in range(50):
            if round_ == 25:
                compressor.set_level(6)
            stored, compressed = compressor.compress(data)
            if not compressed or compressor.decompress(stored) != data:
                failures.append(f"round {round_} lost data")

    threads = [threading.Thread(target=work, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert compressor.stats().compressed == 8 * 50
