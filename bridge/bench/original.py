"""The original Rust + TypeScript CCTelegram's own reported figures, printed beside ours as baselines.

They come from the original's performance analysis and, for the MCP server, from measuring the original
TypeScript server on this kind of machine with a Python MCP client over stdio (issue 6). They were not measured
in this run: the label says "original" so nobody mistakes them for this machine's numbers.
"""

from __future__ import annotations

LABEL = "original"

EVENT_LATENCY_MS = 1200.0
"""Average event latency, file to Telegram (the original's own report; it aimed at 400 ms p50 / 1,000 ms p99)."""

REDIS_OPERATION_MS = 300.0
"""One Redis operation, as the original's analysis reported it."""

COMPRESSION_MS = 180.0
"""One payload compression, as the original's analysis reported it."""

MEMORY_MB = 72.0
"""Resident memory of the original bridge process."""

MCP_REQUEST_MS = 250.0
"""One MCP request, as the original's analysis reported it."""

# The original TypeScript MCP server measured over stdio with a Python client (issue 6).
MCP_STDIO_P50_MS = 1.33
MCP_STDIO_P99_MS = 6.5
MCP_RSS_MB = 90.0
MCP_STARTUP_MS = 255.0
