"""The bridge as the status tools describe it: health and figures, the event types, templates, and the mode."""

from __future__ import annotations

import json
import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Max, Min, Sum
from django.utils import timezone

from bridge.events.catalog import CATALOG, CATEGORIES, EventTypeInfo
from bridge.mcp.results import ToolProblem
from bridge.models import BridgeSettings, Delivery, Event, Mode, Worker, bump_settings

MODE_MESSAGES = {
    Mode.LOCAL: "Local mode: every event is delivered; a text reply is stored and acknowledged with ⚡.",
    Mode.NOMAD: "Nomad mode: every event is delivered; a text reply is answered with a short menu.",
    Mode.MUTED: "Mute mode: only approvals and critical alerts are sent; the rest is recorded as suppressed.",
}


def bridge_status(managed_pid: int | None) -> dict[str, Any]:
    """The get_bridge_status result (the original's shape, plus mode, workers, queue depth and problems).

    ``running`` is true when any bridge worker reported in the last 30 s, or ``managed_pid`` (the bridge this
    server started) is alive. Figures describe the bridge workers, not this MCP server.
    """
    from bridge.health import WORKER_STALE, check

    health = check()
    alive = Worker.objects.filter(heartbeat_at__gte=timezone.now() - WORKER_STALE)
    workers = alive.aggregate(started=Min("started_at"), memory=Sum("memory_mb"))
    uptime = (timezone.now() - workers["started"]).total_seconds() if workers["started"] else 0.0
    last_event = Event.objects.aggregate(last=Max("received_at"))["last"]
    last_event_time = last_event.isoformat() if last_event else None
    failed = (Delivery.Status.FAILED, Delivery.Status.DEAD)
    metrics = {
        "uptime_seconds": round(uptime, 1),
        "events_processed": health.events_processed,
        "telegram_messages_sent": Delivery.objects.filter(status=Delivery.Status.SENT).count(),
        "error_count": Delivery.objects.filter(status__in=failed).count(),
        "memory_usage_mb": round(workers["memory"] or 0.0, 1),
        "cpu_usage_percent": _cpu_percent(alive.values_list("hostname", "pid")),
        "last_event_time": last_event_time,
    }
    return {
        "running": health.workers > 0 or managed_pid is not None,
        "health": health.status,
        "mode": BridgeSettings.load().mode,
        "workers": health.workers,
        "queue_depth": health.queue_depth,
        "error_rate_percent": health.error_rate_percent,
        "problems": health.problems,
        "metrics": metrics,
        "last_event_time": last_event_time,
    }


def _cpu_percent(workers) -> float:
    """Average CPU use since start of the workers on this host (others cannot be asked)."""
    import socket

    import psutil

    here, total = socket.gethostname(), 0.0
    for hostname, pid in workers:
        if hostname != here:
            continue
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                times, started = process.cpu_times(), process.create_time()
        except psutil.Error:
            continue
        total += 100.0 * (times.user + times.system) / max(time.time() - started, 1e-3)
    return round(total, 1)


def event_types(category: str | None) -> dict[str, Any]:
    """The list_event_types result; ``category`` matches part of a category name ("build", "Task Management")."""
    infos = list(CATALOG.values())
    if category:
        wanted = re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")
        chosen = [name for name in CATEGORIES if wanted and wanted in name]
        if not chosen:
            raise ToolProblem(
                f"unknown category {category!r}; categories: {', '.join(CATEGORIES)}", field="category"
            )
        infos = [info for info in infos if info.category in chosen]
    return {"count": len(infos), "event_types": [describe(info) for info in infos]}


def describe(info: EventTypeInfo) -> dict[str, Any]:
    return {
        "type": info.name,
        "category": info.category,
        "emoji": info.emoji,
        "description": info.name.replace("_", " ").capitalize(),
    }


@lru_cache(maxsize=1)
def templates() -> tuple[dict[str, Any], ...]:
    """One ready-to-fill event per type, from the sample events in fixtures/events (read once)."""
    folder = Path(settings.BASE_DIR) / "fixtures" / "events"
    out = []
    for info in CATALOG.values():
        try:
            sample = json.loads((folder / f"{info.name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            sample = {"type": info.name, "title": "", "description": "", "data": {}}
        sample.pop("timestamp", None)
        out.append(
            {
                "id": info.name,
                "name": describe(info)["description"],
                "event_type": info.name,
                "category": info.category,
                "emoji": info.emoji,
                "template": sample,
            }
        )
    return tuple(out)


def switch_mode(mode: Mode) -> dict[str, Any]:
    """Switch the delivery mode (audited, picked up by every worker within a heartbeat)."""
    previous = BridgeSettings.load().mode
    current = bump_settings("mcp", mode=mode)
    return {
        "success": True,
        "mode": current.mode,
        "previous_mode": previous,
        "message": MODE_MESSAGES[Mode(current.mode)],
    }
