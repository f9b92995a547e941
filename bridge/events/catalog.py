"""The event types the bridge understands: 47 types in 10 categories, each with its emoji.

The table is the original system's (see EVENT_TYPES.md). An unknown type is not an error anywhere: `lookup`
answers with category "unknown" and ❓ so the event is still delivered. Nothing here imports Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class EventTypeInfo:
    """One event type: its name, category, emoji, and whether the original's MCP server accepted it."""

    name: str
    category: str
    emoji: str
    mcp: bool = False

    @property
    def known(self) -> bool:
        return self.category != UNKNOWN_CATEGORY


CATEGORIES: tuple[str, ...] = (
    "task_management",
    "code_operations",
    "file_system",
    "build_and_test",
    "version_control",
    "system_monitoring",
    "user_interaction",
    "notifications",
    "integrations",
    "custom",
)

UNKNOWN_CATEGORY = "unknown"
UNKNOWN_EMOJI = "❓"

# (type, category, emoji, accepted by the original's MCP server)
_TABLE: tuple[tuple[str, str, str, bool], ...] = (
    ("task_completion", "task_management", "✅", True),
    ("task_started", "task_management", "🚀", True),
    ("task_failed", "task_management", "❌", True),
    ("task_progress", "task_management", "📊", True),
    ("task_cancelled", "task_management", "🚫", True),
    ("code_generation", "code_operations", "🔨", True),
    ("code_analysis", "code_operations", "🔍", True),
    ("code_refactoring", "code_operations", "🔧", True),
    ("code_review", "code_operations", "👁️", True),
    ("code_testing", "code_operations", "🧪", True),
    ("code_deployment", "code_operations", "🚀", True),
    ("file_created", "file_system", "📄", False),
    ("file_modified", "file_system", "📝", False),
    ("file_deleted", "file_system", "🗑️", False),
    ("directory_created", "file_system", "📁", False),
    ("directory_deleted", "file_system", "🗑️", False),
    ("build_started", "build_and_test", "🔨", False),
    ("build_completed", "build_and_test", "✅", True),
    ("build_failed", "build_and_test", "❌", True),
    ("test_suite_run", "build_and_test", "🧪", True),
    ("test_passed", "build_and_test", "✅", False),
    ("test_failed", "build_and_test", "❌", False),
    ("lint_check", "build_and_test", "📏", True),
    ("type_check", "build_and_test", "🔍", True),
    ("git_commit", "version_control", "📝", False),
    ("git_push", "version_control", "⬆️", False),
    ("git_merge", "version_control", "🔀", False),
    ("git_branch", "version_control", "🌿", False),
    ("git_tag", "version_control", "🏷️", False),
    ("pull_request_created", "version_control", "📋", False),
    ("pull_request_merged", "version_control", "✅", False),
    ("system_health", "system_monitoring", "💚", True),
    ("performance_alert", "system_monitoring", "⚡", True),
    ("security_alert", "system_monitoring", "🔒", False),
    ("error_occurred", "system_monitoring", "❌", True),
    ("resource_usage", "system_monitoring", "📊", False),
    ("approval_request", "user_interaction", "🔐", True),
    ("user_response", "user_interaction", "💬", True),
    ("command_executed", "user_interaction", "⚡", False),
    ("progress_update", "notifications", "🔄", True),
    ("status_change", "notifications", "🔄", False),
    ("alert_notification", "notifications", "🚨", True),
    ("info_notification", "notifications", "ℹ️", True),
    ("api_call", "integrations", "🌐", False),
    ("webhook_received", "integrations", "📡", False),
    ("service_integration", "integrations", "🔗", False),
    ("custom_event", "custom", "🎯", False),
)

CATALOG: dict[str, EventTypeInfo] = {
    name: EventTypeInfo(name, category, emoji, mcp) for name, category, emoji, mcp in _TABLE
}

# task_completion reports its outcome in data.status; the original picked the emoji from it.
_STATUS_EMOJI: dict[str, str] = {
    "completed": "✅",
    "success": "✅",
    "failed": "❌",
    "error": "❌",
    "partial": "⚠️",
    "warning": "⚠️",
}
_OTHER_STATUS_EMOJI = "ℹ️"


def lookup(type_name: str) -> EventTypeInfo:
    """The info for `type_name`; an unknown type gets category "unknown" and ❓. Never raises."""
    info = CATALOG.get(type_name)
    if info is None:
        return EventTypeInfo(str(type_name), UNKNOWN_CATEGORY, UNKNOWN_EMOJI, False)
    return info


def types_in(category: str) -> list[EventTypeInfo]:
    """The types of one category, in catalog order.

    Raises ValueError naming the valid categories when `category` is not one of CATEGORIES.
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; valid categories: {', '.join(CATEGORIES)}")
    return [info for info in CATALOG.values() if info.category == category]


def emoji_for(type_name: str, data: Mapping[str, Any] | None = None) -> str:
    """The emoji to show for an event of `type_name` carrying `data`. Never raises.

    Only task_completion depends on the data: by data["status"] (completed/success ✅, failed/error ❌,
    partial/warning ⚠️, any other status ℹ️, no status ✅).
    """
    if type_name != "task_completion":
        return lookup(type_name).emoji
    status = data.get("status") if isinstance(data, Mapping) else None
    if status is None or status == "":
        return CATALOG["task_completion"].emoji
    if not isinstance(status, str):
        return _OTHER_STATUS_EMOJI
    return _STATUS_EMOJI.get(status.strip().lower(), _OTHER_STATUS_EMOJI)
