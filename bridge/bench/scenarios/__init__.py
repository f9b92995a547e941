"""The bench scenarios, one module each, in the order a full run takes them.

Each module has ``TITLE`` and ``run(ctx)``: it measures, adds its figures to ``ctx.result`` and returns; it raises
``NotRun`` when it cannot run here (what it needs is missing), and bounds every wait it makes.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SCENARIOS: dict[str, str] = {
    "compression": "bridge.bench.scenarios.compression",
    "redis": "bridge.bench.scenarios.redis_ops",
    "ingest": "bridge.bench.scenarios.ingest",
    "e2e": "bridge.bench.scenarios.e2e",
    "burst": "bridge.bench.scenarios.burst",
    "flood": "bridge.bench.scenarios.flood",
    "mcp": "bridge.bench.scenarios.mcp",
    "channel": "bridge.bench.scenarios.channel",
    "hook": "bridge.bench.scenarios.hook",
    "http": "bridge.bench.scenarios.http",
    "soak": "bridge.bench.scenarios.soak",
}

DEFAULT = tuple(name for name in SCENARIOS if name != "soak")
"""What runs when no scenario is named: all but the soak, which takes 30 minutes (2 with --quick)."""


class NotRun(Exception):
    """The scenario cannot run in this environment; the message says why."""


def load(name: str) -> ModuleType:
    return importlib.import_module(SCENARIOS[name])
