"""The event type catalog (EVENT_TYPES.md) and the sample event fixtures, one per type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.events.catalog import CATALOG, CATEGORIES, EventTypeInfo, emoji_for, lookup, types_in
from bridge.events.data import DATA_FIELDS
from bridge.events.parse import parse_file

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"

# EVENT_TYPES.md, copied by hand on purpose: a change to the catalog must be a change to this table too.
DOCUMENTED = [
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
]

DOCUMENTED_CATEGORIES = (
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


def test_catalog_has_the_47_documented_types_in_10_categories():
    assert len(CATALOG) == 47
    assert list(CATALOG) == [row[0] for row in DOCUMENTED]
    assert CATEGORIES == DOCUMENTED_CATEGORIES
    assert {info.category for info in CATALOG.values()} == set(CATEGORIES)


def test_24_types_are_marked_as_accepted_by_the_original_mcp_server():
    assert sum(info.mcp for info in CATALOG.values()) == 24


@pytest.mark.parametrize(("name", "category", "emoji", "mcp"), DOCUMENTED)
def test_every_type_has_its_documented_category_emoji_and_mcp_flag(name, category, emoji, mcp):
    assert lookup(name) == EventTypeInfo(name, category, emoji, mcp)
    assert lookup(name).known


def test_types_in_lists_a_category_in_catalog_order():
    names = [info.name for info in types_in("version_control")]
    assert names == [
        "git_commit",
        "git_push",
        "git_merge",
        "git_branch",
        "git_tag",
        "pull_request_created",
        "pull_request_merged",
    ]
    assert sum(len(types_in(category)) for category in CATEGORIES) == 47


def test_types_in_an_unknown_category_raises_naming_the_valid_ones():
    with pytest.raises(ValueError, match="unknown category 'deployments'") as caught:
        types_in("deployments")
    assert all(category in str(caught.value) for category in CATEGORIES)


@pytest.mark.parametrize("name", ["deployment_finished", "", "TASK_COMPLETION"])
def test_unknown_type_is_looked_up_as_unknown_with_a_question_mark(name):
    info = lookup(name)
    assert (info.name, info.category, info.emoji, info.mcp) == (name, "unknown", "❓", False)
    assert not info.known
    assert emoji_for(name, {"status": "failed"}) == "❓"


@pytest.mark.parametrize(
    ("data", "emoji"),
    [
        ({"status": "completed"}, "✅"),
        ({"status": "success"}, "✅"),
        ({"status": "failed"}, "❌"),
        ({"status": "error"}, "❌"),
        ({"status": "partial"}, "⚠️"),
        ({"status": "warning"}, "⚠️"),
        ({"status": "Failed "}, "❌"),
        ({"status": "in_review"}, "ℹ️"),
        ({"status": 3}, "ℹ️"),
        ({"status": None}, "✅"),
        ({}, "✅"),
        (None, "✅"),
    ],
)
def test_task_completion_emoji_follows_data_status(data, emoji):
    assert emoji_for("task_completion", data) == emoji


def test_other_types_keep_their_emoji_whatever_the_status():
    assert emoji_for("build_completed", {"status": "failed"}) == "✅"
    assert emoji_for("task_failed", {"status": "completed"}) == "❌"


FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))


def test_fixture_files_are_exactly_one_per_catalog_type():
    assert {path.stem for path in FIXTURE_FILES} == set(CATALOG)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: path.stem)
def test_every_fixture_parses_as_the_type_of_its_file_name(path):
    event = parse_file(path, root=FIXTURES)
    assert event.type == path.stem
    assert event.category == CATALOG[path.stem].category
    assert event.title and event.description and event.task_id and event.source == "claude-code"


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: path.stem)
def test_every_fixture_has_all_top_level_fields_and_meaningful_data(path):
    document = json.loads(path.read_text(encoding="utf-8"))
    assert set(document) == {"type", "title", "description", "source", "task_id", "timestamp", "data"}
    assert len(set(document["data"]) & set(DATA_FIELDS)) >= 1
