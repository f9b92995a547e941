"""zstd compression of queued payloads, tunable while the bridge runs.

One ``ZstdCompressor`` per level is kept and reused: building one per call costs more than compressing a small
event. zstd contexts are not thread-safe, so each thread gets its own (queue backends compress on worker threads).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import zstandard

from bridge import metrics

MIN_LEVEL = 1
MAX_LEVEL = 22


@dataclass(frozen=True, slots=True)
class CompressionStats:
    """Counters since the compressor was made, for metrics and the auto-tuner."""

    bytes_in: int  # every byte offered to compress(), compressed or not
    bytes_out: int  # every byte compress() handed back
    compressed: int  # payloads stored compressed
    stored_raw: int  # payloads stored as they were (too small, or compression did not shrink them)
    compress_seconds: float
    decompress_seconds: float

    @property
    def ratio(self) -> float:
        """Stored size over offered size (1.0 when nothing was offered)."""
        return self.bytes_out / self.bytes_in if self.bytes_in else 1.0


class Compressor:
    """Compresses payloads of at least ``min_bytes`` at zstd ``level``; smaller or incompressible ones stay raw.

    ``set_level`` and ``set_min_bytes`` take effect on the next call, in every thread.
    """

    def __init__(self, level: int = 3, min_bytes: int = 4096) -> None:
        self._level = _check_level(level)
        self._min_bytes = _check_min_bytes(min_bytes)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._bytes_in = self._bytes_out = self._compressed = self._stored_raw = 0
        self._compress_seconds = self._decompress_seconds = 0.0

    @property
    def level(self) -> int:
        return self._level

    @property
    def min_bytes(self) -> int:
        return self._min_bytes

    def set_level(self, level: int) -> None:
        """Raises ValueError unless 1 <= level <= 22."""
        self._level = _check_level(level)

    def set_min_bytes(self, min_bytes: int) -> None:
        """Raises ValueError for a negative size."""
        self._min_bytes = _check_min_bytes(min_bytes)

    def compress(self, data: bytes) -> tuple[bytes, bool]:
        """Return ``(stored bytes, compressed?)``: ``data`` itself and False when it is too small to be worth it
        or zstd does not make it smaller."""
        if len(data) < self._min_bytes:
            self._count(len(data), len(data), raw=True, seconds=0.0)
            return data, False
        started = time.perf_counter()
        out = self._compressor(self._level).compress(data)
        seconds = time.perf_counter() - started
        metrics.COMPRESSION_SECONDS.observe(seconds)
        metrics.COMPRESSION_RATIO.observe(min(1.0, len(out) / len(data)) if data else 1.0)
        metrics.COMPRESSION_IN.inc(len(data))
        metrics.COMPRESSION_OUT.inc(min(len(out), len(data)))
        if len(out) >= len(data):
            self._count(len(data), len(data), raw=True, seconds=seconds)
            return data, False
        self._count(len(data), len(out), raw=False, seconds=seconds)
        return out, True

    def decompress(self, data: bytes) -> bytes:
        """Inverse of a compress() that returned True; raises zstandard.ZstdError on data that is not a frame."""
        started = time.perf_counter()
        out = self._decompressor().decompress(data)
        with self._lock:
            self._decompress_seconds += time.perf_counter() - started
        return out

    def stats(self) -> CompressionStats:
        with self._lock:
            return CompressionStats(
                bytes_in=self._bytes_in,
                bytes_out=self._bytes_out,
                compressed=self._compressed,
                stored_raw=self._stored_raw,
                compress_seconds=self._compress_seconds,
                decompress_seconds=self._decompress_seconds,
            )

    def _compressor(self, level: int) -> zstandard.ZstdCompressor:
        per_level = self._local.__dict__.setdefault("compressors", {})
        cctx = per_level.get(level)
        if cctx is None:
            # The content size in the frame lets decompress() size its output in one allocation.
            cctx = per_level[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
        return cctx

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        dctx = self._local.__dict__.get("decompressor")
        if dctx is None:
            dctx = self._local.decompressor = zstandard.ZstdDecompressor()
        return dctx

    def _count(self, size_in: int, size_out: int, *, raw: bool, seconds: float) -> None:
        with self._lock:
            self._bytes_in += size_in
            self._bytes_out += size_out
            self._compress_seconds += seconds
            if raw:
                self._stored_raw += 1
            else:
                self._compressed += 1


def _check_level(level: int) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ValueError(f"zstd level must be an integer from {MIN_LEVEL} to {MAX_LEVEL}, not {level!r}")
    return level


def _check_min_bytes(min_bytes: int) -> int:
    if isinstance(min_bytes, bool) or not isinstance(min_bytes, int) or min_bytes < 0:
        raise ValueError(f"compression threshold must be a non-negative integer, not {min_bytes!r}")
    return min_bytes
