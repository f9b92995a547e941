"""The small shared world of the suite: folders, Redis, recipients."""

from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture
def redis_url() -> str:
    """A real Redis: REDIS_URL in CI, the throwaway server scripts/run-tests starts otherwise."""
    url = os.environ.get("REDIS_URL") or os.environ.get("CC_TELEGRAM_TEST_REDIS_URL")
    if not url:
        pytest.fail(
            "These tests need Redis: run them through scripts/run-tests (make test) or set REDIS_URL."
        )
    return url


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix of this test's own, so tests never see each other's keys."""
    return f"cct-test:{uuid.uuid4().hex[:12]}"


@pytest.fixture
def folders(settings, tmp_path):
    """Events and responses folders of this test's own."""
    settings.CC_TELEGRAM_HOME = tmp_path
    settings.CC_TELEGRAM_EVENTS_DIR = tmp_path / "events"
    settings.CC_TELEGRAM_RESPONSES_DIR = tmp_path / "responses"
    settings.CC_TELEGRAM_EVENTS_DIR.mkdir()
    settings.CC_TELEGRAM_RESPONSES_DIR.mkdir()
    return settings
