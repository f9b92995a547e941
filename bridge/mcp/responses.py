"""The owner's answers as the response tools report them: read from the Response rows, shaped like the files.

The database is the record (every response file mirrors a row, see bridge.replies.response_files), so the tools
read rows: no folder scan, no half-written file, and the same answer whatever worker wrote the file. Each
response is the very object its file holds (``payload``).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bridge.models import Response
from bridge.replies.response_files import payload

logger = logging.getLogger(__name__)

_ACTIONS = {Response.Decision.APPROVED: "approve", Response.Decision.DENIED: "deny"}


def recent(limit: int) -> dict[str, Any]:
    """The get_telegram_responses result: the newest ``limit`` responses and how many there are in all."""
    rows = Response.objects.select_related("event").order_by("-created_at", "-pk")[:limit]
    responses = [payload(row) for row in rows]
    return {"count": len(responses), "total": Response.objects.count(), "responses": responses}


def pending_actions(since_minutes: float) -> dict[str, Any]:
    """The process_pending_responses result: approvals and denials of the last ``since_minutes`` minutes."""
    since = timezone.now() - timedelta(minutes=since_minutes)
    rows = list(
        Response.objects.filter(created_at__gte=since).select_related("event").order_by("-created_at")
    )
    actionable = []
    for row in rows:
        action = _action(row)
        if action is None:
            continue
        data = payload(row)
        actionable.append(
            {
                "action": action,
                "task_id": data["task_id"],
                "event_id": data["event_id"],
                "user_id": row.user_id,
                "username": data["username"],
                "timestamp": data["timestamp"],
                "response_data": data,
            }
        )
    approvals = sum(1 for item in actionable if item["action"] == "approve")
    if actionable:
        recommendations = [
            f"Found {len(actionable)} approval decisions ({approvals} approved, {len(actionable) - approvals} "
            "denied)",
            "Act on each decision for its task_id or event_id; wait_for_approval waits for one that is still open",
        ]
    else:
        recommendations = [
            "No approval decisions in the specified time window",
            "Either none was requested, or they were answered earlier (widen since_minutes)",
        ]
    return {
        "summary": {
            "total_recent_responses": len(rows),
            "actionable_responses": len(actionable),
            "pending_approvals": approvals,
            "pending_denials": len(actionable) - approvals,
            "time_window_minutes": since_minutes,
        },
        "actionable_responses": actionable,
        "recommendations": recommendations,
    }


def _action(row: Response) -> str | None:
    """approve or deny for a deciding button press; the original's approve_/deny_ callback data counts too."""
    if row.kind != Response.Kind.CALLBACK:
        return None
    if row.decision in _ACTIONS:
        return _ACTIONS[row.decision]
    for action in ("approve", "deny"):
        if row.callback_data.startswith(f"{action}_"):
            return action
    return None


def clear_old(older_than_hours: float) -> dict[str, Any]:
    """The clear_old_responses result: response files older than the cutoff deleted, and their rows.

    Only ``*.json`` files directly in the responses folder go; hidden files (a writer's temp file in flight) and
    subfolders are left alone. A file that cannot be deleted is reported, not fatal.
    """
    cutoff = time.time() - older_than_hours * 3600
    folder = Path(settings.CC_TELEGRAM_RESPONSES_DIR)
    deleted, failed = 0, []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        entries = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.name.endswith(".json"):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                deleted += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            failed.append(f"{entry.name}: {exc.strerror or exc}")
    with transaction.atomic():
        rows, _ = Response.objects.filter(
            created_at__lt=timezone.now() - timedelta(hours=older_than_hours)
        ).delete()
    if deleted or rows:
        logger.info("cleared %s response files and %s response records", deleted, rows)
    result: dict[str, Any] = {
        "deleted_count": deleted,
        "deleted_records": rows,
        "message": f"Cleared {deleted} old response files and {rows} response records",
    }
    if failed:
        result["errors"] = failed[:20]
    return result
