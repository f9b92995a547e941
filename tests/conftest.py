"""The small shared world of the suite: folders, Redis, recipients."""

from __future__ import annotations

import os
import uuid

import pytest

pytest_plugins = ["tests.emulator_fixtures"]


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


@pytest.fixture(autouse=True)
def _own_redis_keys(settings, key_prefix):
    """Queue streams, rate buckets and channel-layer groups of this test's own, whatever Redis the suite shares
    (test files run side by side: one's workers must not reach another's dashboard)."""
    settings.CC_TELEGRAM_REDIS_PREFIX = key_prefix
    layer = settings.CHANNEL_LAYERS["default"]
    if "prefix" in layer.get("CONFIG", {}):
        settings.CHANNEL_LAYERS = {
            **settings.CHANNEL_LAYERS,
            "default": {**layer, "CONFIG": {**layer["CONFIG"], "prefix": f"{key_prefix}:channels"}},
        }


@pytest.fixture(scope="session", autouse=True)
def _drop_worker_connections(django_db_setup, django_db_blocker):
    """Code under test talks to the database from worker threads (sync_to_async); their PostgreSQL sessions
    would keep the test database from being dropped at the end."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
